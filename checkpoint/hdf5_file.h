// Thin RAII layer over the HDF5 1.10 C API. INTERNAL to checkpoint/: include it only from
// checkpoint/*.cc (and checkpoint's unit tests), so that HDF5 types and <hdf5.h> never reach
// pipeline/ or launcher/ through checkpoint's public headers.
//
// Every HDF5 call goes through here so that a failure becomes a conveyor::Error naming the
// file and object, with HDF5's own innermost message appended; HDF5's automatic printing of
// error stacks to stderr is switched off. Write failures are kRuntime (disk full, I/O error);
// read failures are kUsage (the input checkpoint is damaged or is not a checkpoint).
//
// Thread safety: the Debian HDF5 build is thread-safe (global lock); handles are not shared
// between threads by this code.
#pragma once

#ifndef CONVEYOR_CHECKPOINT_INTERNAL
#error "checkpoint/hdf5_file.h is internal to checkpoint/; include checkpoint/checkpoint.h"
#endif

#include <hdf5.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "common/error.h"

namespace conveyor::checkpoint::h5 {

// Owns one hid_t and closes it with the matching H5*close (by H5Iget_type).
class Handle {
 public:
  Handle() = default;
  explicit Handle(hid_t id) : id_(id) {}
  ~Handle() { reset(); }
  Handle(Handle&& other) noexcept : id_(other.id_) { other.id_ = H5I_INVALID_HID; }
  Handle& operator=(Handle&& other) noexcept {
    if (this != &other) {
      reset();
      id_ = other.id_;
      other.id_ = H5I_INVALID_HID;
    }
    return *this;
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;

  hid_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }
  // Closes now; returns false if HDF5 reported an error (for files, a failed final flush:
  // HDF5 has then closed the file descriptor and freed the file anyway, see quiet()).
  bool close();
  void reset() { (void)close(); }

 private:
  hid_t id_ = H5I_INVALID_HID;
};

// Once per process: switches off HDF5's error printing, and replaces HDF5's exit-time clean-up
// by one that is skipped after a failed file close (which would crash it in HDF5 1.10).
// Called by every entry point below, before any other HDF5 call.
void quiet();

// HDF5's error stack, innermost message first, as one line ("" when empty).
std::string error_stack();

// ---- Writing -------------------------------------------------------------------------------

// Creates (truncating) an HDF5 file for writing: superblock v2+ (checksummed metadata), no
// file locking (one writer per file; the commit protocol is the lock).
Handle create_file(const std::filesystem::path& path);
// Closes a file being written, turning a failed flush into Error(kRuntime).
void close_file(Handle& file, const std::filesystem::path& path);
Handle create_group(hid_t loc, const std::string& name, const std::filesystem::path& file);

// Writes a contiguous dataset `name` under `loc` (no chunking, no compression, no fill) from
// `data` (bytes in memory type `mem_type`, identical to `file_type` on this host so no
// conversion runs), and attaches attribute "xxh3" (uint64) of the raw bytes. dims empty =
// scalar. Returns the checksum.
uint64_t write_dataset(hid_t loc, const std::string& name, hid_t file_type, hid_t mem_type,
                       const std::vector<int64_t>& dims, const void* data, size_t bytes,
                       const std::filesystem::path& file);
// Scalar attributes on an object (for h5dump readability).
void write_attr_i64(hid_t obj, const std::string& name, int64_t value,
                    const std::filesystem::path& file);
void write_attr_string(hid_t obj, const std::string& name, const std::string& value,
                       const std::filesystem::path& file);
// A fixed-length string type of `size` bytes (NUL padded); h5py reads it as bytes.
Handle string_type(size_t size);

// ---- Reading -------------------------------------------------------------------------------

// Opens a checkpoint shard read-only. Error(kUsage) when the file is missing, is not an HDF5
// file ("... is not an HDF5 file; is the checkpoint directory correct?"), or cannot be opened
// (truncated or damaged).
Handle open_file(const std::filesystem::path& path);

// Throws the "is not an HDF5 file" Error(kUsage) when the file lacks the HDF5 signature.
void require_signature(const std::filesystem::path& path);

struct DatasetView {
  Handle dataset;
  Handle type;                 // the file datatype
  std::vector<int64_t> shape;  // empty for a scalar
  size_t bytes = 0;            // number of elements * element size
};
// Opens dataset `path` ("/params/x"); nullopt if no such link exists. Error(kUsage) when it
// exists but cannot be opened.
std::optional<DatasetView> open_dataset(hid_t file, const std::string& path,
                                        const std::filesystem::path& file_path);
// Reads the whole dataset's bytes exactly as stored (memory type = file type).
std::vector<char> read_raw(const DatasetView& view, const std::string& path,
                           const std::filesystem::path& file_path);
// XXH3-64 of the dataset's bytes as stored, read in slices of at most `slice_bytes` along the
// first dimension (bounded memory, one reused buffer: big tensors are not faulted in whole).
uint64_t hash_dataset(const DatasetView& view, const std::string& path,
                      const std::filesystem::path& file_path, size_t slice_bytes = 16u << 20);
// Reads a float32 dataset into `out` (view.bytes bytes). Error(kUsage) if it is not float32.
void read_float32(const DatasetView& view, float* out, const std::string& path,
                  const std::filesystem::path& file_path);
// The dataset's "xxh3" attribute; nullopt if absent.
std::optional<uint64_t> read_checksum_attr(const DatasetView& view, const std::string& path,
                                           const std::filesystem::path& file_path);
// A scalar integer attribute of the root group; nullopt if absent.
std::optional<int64_t> read_root_attr_i64(hid_t file, const std::string& name,
                                          const std::filesystem::path& file_path);

}  // namespace conveyor::checkpoint::h5
