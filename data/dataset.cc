#include "data/dataset.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <set>
#include <system_error>

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

// An open file that closes itself; every failure becomes a kRuntime Error naming the path.
class InputFile {
 public:
  explicit InputFile(const fs::path& path)
      : path_(path), file_(std::fopen(path.c_str(), "rb"), &std::fclose) {
    if (!file_) {
      throw Error(ErrorKind::kRuntime,
                  fmt::format("cannot open data file {}: {}", path_.string(), std::strerror(errno)),
                  "check that it exists and is readable");
    }
  }

  // Reads exactly `n` bytes or throws (a file that shrank while we read it).
  void read_exactly(void* dst, size_t n) {
    if (n == 0) return;
    if (std::fread(dst, 1, n, file_.get()) != n) {
      throw Error(ErrorKind::kRuntime,
                  fmt::format("reading data file {} failed: {}", path_.string(),
                              std::ferror(file_.get()) ? std::strerror(errno) : "unexpected end"),
                  "was the file changed while conveyor read it?");
    }
  }

 private:
  fs::path path_;
  std::unique_ptr<FILE, int (*)(FILE*)> file_;
};

uint64_t file_size_or_throw(const fs::path& path) {
  std::error_code ec;
  const uint64_t n = fs::file_size(path, ec);
  if (ec) {
    throw Error(
        ErrorKind::kRuntime,
        fmt::format("cannot read the size of data file {}: {}", path.string(), ec.message()),
        "check that it exists and is readable");
  }
  return n;
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
std::vector<fs::path> list_inputs(const std::string& path) {
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

void require_tokens_below_vocab(const uint16_t* tokens, size_t n, int vocab,
                                const std::string& where) {
  for (size_t i = 0; i < n; ++i) {
    if (tokens[i] >= vocab) {
      throw Error(
          ErrorKind::kUsage,
          fmt::format("{}: token {} at index {} is >= --vocab {}", where, tokens[i], i, vocab),
          fmt::format("pass --vocab {} or more, or regenerate the data with the "
                      "tokenizer the model is meant for",
                      tokens[i] + 1));
    }
  }
}

}  // namespace

Dataset Dataset::open(const std::string& path, int vocab) {
  CONVEYOR_REQUIRE(vocab >= 1, "--vocab {} must be at least 1", vocab);
  const std::vector<fs::path> files = list_inputs(path);
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
      const uint64_t bytes = file_size_or_throw(f);
      total_bytes += bytes;
      if (bytes < kTokenFileHeaderBytes) {
        throw Error(ErrorKind::kUsage,
                    fmt::format("token file {} has {} bytes, too few for the {}-byte header", name,
                                bytes, kTokenFileHeaderBytes),
                    "regenerate it with llm.c's data scripts (or rename it if it is text)");
      }
      InputFile in(f);
      int32_t header[kTokenFileHeaderInts];
      in.read_exactly(header, sizeof(header));
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
      const size_t old = d.tokens16_.size();
      d.tokens16_.resize(old + static_cast<size_t>(count));
      in.read_exactly(d.tokens16_.data() + old, static_cast<size_t>(count) * sizeof(uint16_t));
      require_tokens_below_vocab(d.tokens16_.data() + old, static_cast<size_t>(count), vocab, name);
    }
  } else {
    std::vector<uint64_t> sizes;
    for (const fs::path& f : files) sizes.push_back(file_size_or_throw(f));
    for (uint64_t s : sizes) total_bytes += s;
    d.bytes_.reserve(total_bytes);
    for (size_t k = 0; k < files.size(); ++k) {
      const size_t old = d.bytes_.size();
      d.bytes_.resize(old + sizes[k]);
      InputFile(files[k]).read_exactly(d.bytes_.data() + old, sizes[k]);
      if (vocab < 256) {
        for (size_t i = old; i < d.bytes_.size(); ++i) {
          if (d.bytes_[i] >= vocab) {
            throw Error(ErrorKind::kUsage,
                        fmt::format("{}: byte {} at index {} is >= --vocab {}", files[k].string(),
                                    d.bytes_[i], i - old, vocab),
                        "byte-level text needs --vocab 256 (or more)");
          }
        }
      }
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

std::vector<fs::path> Dataset::input_files(const std::string& path) {
  return list_inputs(path);
}

Dataset Dataset::from_tokens(const std::vector<uint16_t>& tokens, int vocab,
                             const std::string& name) {
  CONVEYOR_REQUIRE(vocab >= 1, "--vocab {} must be at least 1", vocab);
  CONVEYOR_REQUIRE(!tokens.empty(), "{}: no tokens", name);
  require_tokens_below_vocab(tokens.data(), tokens.size(), vocab, name);
  Dataset d;
  d.vocab_ = vocab;
  d.is_token_file_ = true;
  d.tokens16_ = tokens;
  d.description_ = fmt::format("{}: {} tokens (uint16, in memory)", name, human_count(d.size()));
  return d;
}

void Dataset::read(size_t begin, size_t count, int32_t* out) const {
  CONVEYOR_CHECK(begin <= size() && count <= size() - begin,
                 "token range [{}, {}) is outside the data ({} tokens)", begin, begin + count,
                 size());
  if (is_token_file_) {
    std::copy_n(tokens16_.data() + begin, count, out);
  } else {
    std::copy_n(bytes_.data() + begin, count, out);
  }
}

}  // namespace conveyor::data
