#include "data/dataset.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <optional>
#include <set>
#include <system_error>
#include <utility>

#include "common/error.h"
#include "data/token_file.h"

namespace conveyor::data {

namespace fs = std::filesystem;

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string human_bytes(uint64_t n) {
  if (n < 1000) return fmt::format("{} B", n);
  if (n < 1000 * 1000) return fmt::format("{:.1f} KB", n / 1e3);
  if (n < 1000ull * 1000 * 1000) return fmt::format("{:.1f} MB", n / 1e6);
  return fmt::format("{:.1f} GB", n / 1e9);
}

std::string human_count(uint64_t n) {
  if (n < 1000) return fmt::format("{}", n);
  if (n < 1000 * 1000) return fmt::format("{:.1f}K", n / 1e3);
  if (n < 1000ull * 1000 * 1000) return fmt::format("{:.1f}M", n / 1e6);
  return fmt::format("{:.1f}B", n / 1e9);
}

// llm.c names its shards NAME_train_000001.bin / NAME_val_000000.bin (or NAME_train.bin):
// the split is "_train" or "_val" followed by '_' or '.'.
std::optional<Split> split_of(const std::string& name) {
  for (auto [tag, split] : {std::pair{"_train", Split::kTrain}, std::pair{"_val", Split::kVal}}) {
    for (size_t at = name.find(tag); at != std::string::npos; at = name.find(tag, at + 1)) {
      const size_t end = at + std::strlen(tag);
      if (end < name.size() && (name[end] == '_' || name[end] == '.')) return split;
    }
  }
  return std::nullopt;
}

// A checkpoint directory's own files at its top level (checkpoint/layout.h; data/ sits below
// checkpoint/ and does not link it). Only skipped where the folder holds a committed step,
// so a data file that happens to be called LATEST is still read elsewhere.
bool is_checkpoint_pointer(const fs::path& folder, const std::string& name) {
  if (name != "LATEST" && name != "LATEST.tmp") return false;
  std::error_code ec;
  for (const fs::directory_entry& entry : fs::directory_iterator(folder, ec)) {
    const std::string sub = entry.path().filename().string();
    if (sub.size() >= 14 && sub.rfind("step_", 0) == 0 &&
        std::all_of(sub.begin() + 5, sub.end(), [](char c) { return c >= '0' && c <= '9'; }) &&
        entry.is_directory(ec)) {
      return true;
    }
  }
  return false;
}

// The files a --data path stands for, in reading order.
std::vector<fs::path> list_inputs(const std::string& path, Split split) {
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  if (!fs::exists(st)) {
    throw Error(ErrorKind::kUsage, fmt::format("data path {} does not exist", path),
                fmt::format("pass --data FILE or FOLDER (the default corpus {} comes with "
                            "Debian's 'fortunes' package)",
                            kDefaultCorpus));
  }
  if (fs::is_regular_file(st)) return {fs::path(path)};
  if (!fs::is_directory(st)) {
    throw Error(ErrorKind::kUsage,
                fmt::format("data path {} is neither a regular file nor a folder", path),
                "pass --data a text file, a .bin token file, or a folder of them");
  }

  std::vector<fs::path> files;
  fs::directory_iterator it(path, ec);
  if (ec) {
    throw Error(ErrorKind::kUsage,
                fmt::format("cannot list data folder {}: {}", path, ec.message()),
                "check that the folder is readable");
  }
  for (const fs::directory_entry& entry : it) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || name[0] == '.' || ends_with(name, ".dat")) continue;
    if (is_checkpoint_pointer(path, name)) continue;
    std::error_code entry_ec;
    if (!fs::is_regular_file(entry.path(), entry_ec)) continue;  // follows symlinks
    files.push_back(entry.path());
  }
  // Sort by name so the concatenation (and so every sampled batch) does not depend on the
  // order the file system lists entries in.
  std::sort(files.begin(), files.end(),
            [](const fs::path& a, const fs::path& b) { return a.filename() < b.filename(); });

  // A folder of llm.c shards holds both splits: read the one asked for.
  const bool has_val = std::any_of(files.begin(), files.end(), [](const fs::path& f) {
    return split_of(f.filename().string()) == Split::kVal;
  });
  if (has_val) {
    std::erase_if(files, [&](const fs::path& f) {
      const auto s = split_of(f.filename().string());
      return s.has_value() && *s != split;
    });
    if (files.empty()) {
      throw Error(ErrorKind::kUsage,
                  fmt::format("data folder {} has llm.c validation shards (*_val_*) but no "
                              "training shards (*_train_*)",
                              path),
                  "pass the folder as --val-data, and training data as --data");
    }
  }

  // A file reachable under two names (fortunes ships "art.u8" -> "art") is read once.
  std::set<fs::path> seen;
  std::vector<fs::path> unique;
  for (const fs::path& f : files) {
    std::error_code canon_ec;
    fs::path canon = fs::canonical(f, canon_ec);
    if (canon_ec) canon = f;
    if (seen.insert(canon).second) unique.push_back(f);
  }
  if (unique.empty()) {
    throw Error(ErrorKind::kUsage, fmt::format("data folder {} has no usable files", path),
                "put text files or .bin token files in it (.dat index files, hidden files and "
                "sub-folders are skipped)");
  }
  return unique;
}

// `tokens` holds n little-endian uint16 tokens (a mapped file: not necessarily aligned).
void require_tokens_below_vocab(const uint8_t* tokens, size_t n, int vocab,
                                const std::string& where, const OpenOptions& source) {
  for (size_t i = 0; i < n; ++i) {
    uint16_t token;
    std::memcpy(&token, tokens + 2 * i, sizeof token);
    if (token >= vocab) {
      throw Error(ErrorKind::kUsage,
                  fmt::format("{}: token {} at index {} is >= {} {}", where, token, i,
                              source.vocab_name, vocab),
                  source.vocab_is_flag
                      ? fmt::format("pass --vocab {} or more, or regenerate the data "
                                    "with the tokenizer the model is meant for",
                                    token + 1)
                      : std::string("use data made with the model's tokenizer"));
    }
  }
}

}  // namespace

Dataset Dataset::open(const std::string& path, int vocab, const OpenOptions& options) {
  const OpenOptions& source = options;
  CONVEYOR_REQUIRE(vocab >= 1, "--vocab {} must be at least 1", vocab);
  const std::vector<fs::path> files = list_inputs(path, options.split);
  const size_t num_bin = static_cast<size_t>(std::count_if(
      files.begin(), files.end(), [](const fs::path& f) { return ends_with(f.string(), ".bin"); }));
  if (num_bin != 0 && num_bin != files.size()) {
    throw Error(ErrorKind::kUsage,
                fmt::format("data folder {} mixes {} .bin token files with {} text files", path,
                            num_bin, files.size() - num_bin),
                "put token files and text files in separate folders");
  }

  Dataset d;
  d.vocab_ = vocab;
  d.is_token_file_ = num_bin != 0;
  uint64_t total_bytes = 0;

  if (d.is_token_file_) {
    for (const fs::path& f : files) {
      const std::string name = f.string();
      auto file = std::make_shared<const MappedFile>(f);
      const uint64_t bytes = file->size();
      total_bytes += bytes;
      if (bytes < kTokenFileHeaderBytes) {
        throw Error(ErrorKind::kUsage,
                    fmt::format("token file {} has {} bytes, too few for the {}-byte header", name,
                                bytes, kTokenFileHeaderBytes),
                    "regenerate it with llm.c's data scripts (or rename it if it is text)");
      }
      int32_t header[kTokenFileHeaderInts];
      std::memcpy(header, file->data(), sizeof(header));
      if (header[0] != kTokenFileMagic) {
        throw Error(ErrorKind::kUsage,
                    fmt::format("token file {} has magic {}, expected {}", name, header[0],
                                kTokenFileMagic),
                    "is it an llm.c .bin token file? Text files must not end in .bin");
      }
      if (header[1] != kTokenFileVersion) {
        throw Error(ErrorKind::kUsage,
                    fmt::format("token file {} has version {}; only version {} (uint16 tokens) is "
                                "supported",
                                name, header[1], kTokenFileVersion),
                    "regenerate it as a GPT-2 (version 1) token file");
      }
      const int32_t count = header[2];
      const uint64_t expected =
          kTokenFileHeaderBytes + static_cast<uint64_t>(std::max(count, 0)) * sizeof(uint16_t);
      if (count < 0 || bytes != expected) {
        throw Error(ErrorKind::kUsage,
                    fmt::format("token file {} has {} bytes but its header says {} tokens "
                                "({} bytes)",
                                name, bytes, count, expected),
                    "the file is truncated or corrupt; regenerate it");
      }
      const uint8_t* body = file->data() + kTokenFileHeaderBytes;
      require_tokens_below_vocab(body, static_cast<size_t>(count), vocab, name, source);
      d.add_segment(body, static_cast<size_t>(count));
      d.files_.push_back(std::move(file));
    }
  } else {
    for (const fs::path& f : files) {
      auto file = std::make_shared<const MappedFile>(f);
      total_bytes += file->size();
      if (vocab < 256) {
        for (size_t i = 0; i < file->size(); ++i) {
          if (file->data()[i] >= vocab) {
            throw Error(ErrorKind::kUsage,
                        fmt::format("{}: byte {} at index {} is >= {} {}", f.string(),
                                    file->data()[i], i, source.vocab_name, vocab),
                        source.vocab_is_flag ? "byte-level text needs --vocab 256 (or more)"
                                             : "the model is not byte-level: use its token files");
          }
        }
      }
      d.add_segment(file->data(), file->size());
      d.files_.push_back(std::move(file));
    }
  }

  if (d.size() == 0) {
    throw Error(ErrorKind::kUsage,
                fmt::format("data path {} holds no {}", path,
                            d.is_token_file_ ? "tokens" : "text (it is empty)"),
                "pass --data a file or folder with some data in it");
  }

  const std::string files_text =
      files.size() == 1 ? std::string("1 file") : fmt::format("{} files", files.size());
  if (d.is_token_file_) {
    d.description_ = fmt::format("{}: {}, {}, {} tokens (uint16 token file)", path, files_text,
                                 human_bytes(total_bytes), human_count(d.size()));
  } else {
    d.description_ =
        fmt::format("{}: {}, {}, byte-level", path, files_text, human_bytes(total_bytes));
  }
  return d;
}

std::vector<fs::path> Dataset::input_files(const std::string& path, Split split) {
  return list_inputs(path, split);
}

Dataset Dataset::from_tokens(const std::vector<uint16_t>& tokens, int vocab,
                             const std::string& name) {
  CONVEYOR_REQUIRE(vocab >= 1, "--vocab {} must be at least 1", vocab);
  CONVEYOR_REQUIRE(!tokens.empty(), "{}: no tokens", name);
  Dataset d;
  d.vocab_ = vocab;
  d.is_token_file_ = true;
  d.owned_ = std::make_shared<const std::vector<uint16_t>>(tokens);
  const auto* base = reinterpret_cast<const uint8_t*>(d.owned_->data());
  require_tokens_below_vocab(base, tokens.size(), vocab, name, OpenOptions{});
  d.add_segment(base, tokens.size());
  d.description_ = fmt::format("{}: {} tokens (uint16, in memory)", name, human_count(d.size()));
  return d;
}

void Dataset::add_segment(const uint8_t* base, size_t count) {
  if (count == 0) return;
  segments_.push_back({base, size_, count});
  size_ += count;
}

// The address of token i, and how many tokens follow it in its segment (itself included).
const uint8_t* Dataset::token_address(size_t i, size_t* left_in_segment) const {
  auto it = std::upper_bound(segments_.begin(), segments_.end(), i,
                             [](size_t index, const Segment& s) { return index < s.first; });
  const Segment& seg = *std::prev(it);
  *left_in_segment = seg.first + seg.count - i;
  return seg.base + (i - seg.first) * (is_token_file_ ? 2 : 1);
}

int32_t Dataset::operator[](size_t i) const {
  size_t left = 0;
  const uint8_t* p = token_address(i, &left);
  if (!is_token_file_) return *p;
  uint16_t token;
  std::memcpy(&token, p, sizeof token);
  return token;
}

void Dataset::read(size_t begin, size_t count, int32_t* out) const {
  CONVEYOR_CHECK(begin <= size() && count <= size() - begin,
                 "token range [{}, {}) is outside the data ({} tokens)", begin, begin + count,
                 size());
  while (count > 0) {  // a window may span two files of a folder
    size_t left = 0;
    const uint8_t* p = token_address(begin, &left);
    const size_t n = std::min(left, count);
    if (is_token_file_) {
      for (size_t i = 0; i < n; ++i) {
        uint16_t token;
        std::memcpy(&token, p + 2 * i, sizeof token);
        out[i] = token;
      }
    } else {
      std::copy_n(p, n, out);
    }
    begin += n;
    count -= n;
    out += n;
  }
}

}  // namespace conveyor::data
