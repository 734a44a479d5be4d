#include "pipeline/runtime/trace.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>

#include <nlohmann/json.hpp>

#include "checkpoint/file_util.h"
#include "common/error.h"
#include "common/file_io.h"
#include "common/printable.h"

namespace conveyor::pipeline {

namespace {

nlohmann::json thread_name_event(const Span& s) {
  return {{"name", "thread_name"},
          {"ph", "M"},
          {"pid", 0},
          {"tid", s.stage},
          {"args", {{"name", s.row.empty() ? "stage " + std::to_string(s.stage) : s.row}}}};
}

nlohmann::json span_event(const Span& s) {
  return {{"name", s.name}, {"cat", s.category}, {"ph", "X"},      {"pid", 0},
          {"tid", s.stage}, {"ts", s.start_us},  {"dur", s.dur_us}};
}

}  // namespace

void write_chrome_trace(const std::string& path, const std::vector<Span>& spans) {
  nlohmann::json events = nlohmann::json::array();
  std::set<int> rows;
  for (const Span& s : spans)
    if (rows.insert(s.stage).second) events.push_back(thread_name_event(s));
  for (const Span& s : spans) events.push_back(span_event(s));
  const nlohmann::json doc = {{"traceEvents", events}, {"displayTimeUnit", "ms"}};

  try {
    checkpoint::write_file_atomic(path, doc.dump() + "\n");
  } catch (const Error& e) {
    // The path comes from --trace: a folder that is missing or not writable is a usage error.
    throw Error(ErrorKind::kUsage,
                fmt::format("cannot write trace file '{}': {}", path, e.message()),
                "check that the folder exists and is writable");
  }
}

}  // namespace conveyor::pipeline

namespace conveyor::pipeline {

std::string trace_part_path(const std::string& path, int rank) {
  const std::filesystem::path p(path);
  const std::string part =
      fmt::format("{}.rank-{}{}", p.stem().string(), rank, p.extension().string());
  return (p.parent_path() / part).string();
}

TraceStream::TraceStream(const std::string& path, int rank) : path_(trace_part_path(path, rank)) {
  auto stream = open_output_stream(path_, WriteMode::kTruncate, "trace part file");
  struct stat st {};
  if (fstat(fileno(stream.get()), &st) == 0) {
    device_ = st.st_dev;
    inode_ = st.st_ino;
  }
  file_ = stream.release();
  append({});  // the opening bracket
}

TraceStream::~TraceStream() {
  close();
}

void TraceStream::append(const std::vector<Span>& spans) {
  if (!file_) return;
  std::string text = started_ ? "" : "[\n";
  started_ = true;
  for (const Span& s : spans) {
    if (named_rows_.insert(s.stage).second) text += thread_name_event(s).dump() + ",\n";
    text += span_event(s).dump() + ",\n";
  }
  if (std::fwrite(text.data(), 1, text.size(), file_) != text.size() || std::fflush(file_) != 0) {
    throw Error(ErrorKind::kRuntime, fmt::format("writing trace file '{}' failed: {}",
                                                 printable(path_), std::strerror(errno)));
  }
}

void TraceStream::close() {
  if (file_) std::fclose(file_);
  file_ = nullptr;
}

void TraceStream::remove() {
  close();
  // Only the file this stream made: something put at the name since is not ours to delete.
  struct stat st {};
  if (::lstat(path_.c_str(), &st) == 0 && S_ISREG(st.st_mode) && st.st_dev == device_ &&
      st.st_ino == inode_)
    ::unlink(path_.c_str());
}

MergedTraceWriter::MergedTraceWriter(const std::string& path)
    : path_(path), tmp_(temporary_path_beside(path).string()) {
  ::unlink(tmp_.c_str());  // a stale one from a crash, or a planted link: never followed
  fd_ = open_output_file(tmp_, WriteMode::kExclusive, "--trace temporary file").release();
  write("{\"traceEvents\": [\n");
}

MergedTraceWriter::~MergedTraceWriter() {
  if (fd_ >= 0) {
    ::close(fd_);
    ::unlink(tmp_.c_str());
  }
}

void MergedTraceWriter::begin_part() {
  skip_ = 2;  // "[\n"
}

void MergedTraceWriter::add(std::string_view bytes) {
  const size_t skipped = std::min(skip_, bytes.size());
  bytes.remove_prefix(skipped);
  skip_ -= skipped;
  if (bytes.empty()) return;
  // Every event ends in ",\n"; the last one of the whole trace must not, so the final two
  // bytes seen are held until more follow.
  std::string data = held_;
  data.append(bytes);
  const size_t keep = std::min<size_t>(2, data.size());
  write(std::string_view(data).substr(0, data.size() - keep));
  held_ = data.substr(data.size() - keep);
}

void MergedTraceWriter::commit() {
  write("\n], \"displayTimeUnit\": \"ms\"}\n");
  if (::fsync(fd_) != 0) {
    throw Error(ErrorKind::kRuntime, fmt::format("fsync of trace file '{}' failed: {}",
                                                 printable(tmp_), std::strerror(errno)));
  }
  ::close(fd_);
  fd_ = -1;
  try {
    rename_into_place(tmp_, path_);
  } catch (...) {
    ::unlink(tmp_.c_str());
    throw;
  }
}

void MergedTraceWriter::write(std::string_view bytes) {
  conveyor::write_all(fd_, bytes, "trace file", tmp_);
}

}  // namespace conveyor::pipeline
