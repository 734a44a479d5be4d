#include "checkpoint/hdf5_file.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <memory>
#include <mutex>

#include "checkpoint/checksum.h"

namespace conveyor::checkpoint::h5 {

namespace {

constexpr const char* kChecksumAttr = "xxh3";

// Set once an H5Fclose has failed (see quiet()).
std::atomic<bool> g_file_close_failed{false};

void shut_down_hdf5() {
  if (!g_file_close_failed.load()) H5close();
}

herr_t collect(unsigned n, const H5E_error2_t* err, void* client) {
  auto* lines = static_cast<std::vector<std::string>*>(client);
  std::string line = err->desc ? err->desc : "";
  if (err->func_name) line = fmt::format("{}: {}", err->func_name, line);
  // Some descriptions embed ctime() text, newline included: keep the message on one line.
  std::replace(line.begin(), line.end(), '\n', ' ');
  lines->push_back(std::move(line));
  return 0;
}

std::string with_stack(std::string message) {
  std::string stack = error_stack();
  if (!stack.empty()) message += fmt::format(" [HDF5: {}]", stack);
  return message;
}

[[noreturn]] void fail(ErrorKind kind, const std::string& what, const std::filesystem::path& file,
                       std::string hint = {}) {
  throw Error(kind, with_stack(fmt::format("{}: {}", file.string(), what)), std::move(hint));
}

hid_t check_id(hid_t id, const std::string& what, const std::filesystem::path& file) {
  if (id < 0) {
    fail(ErrorKind::kRuntime, "HDF5 failed to " + what, file,
         "check that the checkpoint directory is writable and the disk is not full");
  }
  return id;
}

void check_call(herr_t rc, const std::string& what, const std::filesystem::path& file) {
  if (rc < 0) {
    fail(ErrorKind::kRuntime, "HDF5 failed to " + what, file,
         "check that the checkpoint directory is writable and the disk is not full");
  }
}

[[noreturn]] void fail_read(const std::string& what, const std::filesystem::path& file) {
  fail(ErrorKind::kUsage, what, file,
       "the shard is damaged; resume from an older step or restore the file");
}

Handle file_access_plist(bool for_write) {
  Handle fapl(H5Pcreate(H5P_FILE_ACCESS));
  if (!fapl.valid()) throw Error(ErrorKind::kRuntime, with_stack("H5Pcreate(FILE_ACCESS) failed"));
  // One process writes each file and the commit protocol orders readers after writers, so
  // HDF5's advisory locks add nothing and fail on some parallel file systems.
  H5Pset_file_locking(fapl.get(), false, true);
  if (for_write) {
    // Superblock v2+ and v2 object headers: metadata carries checksums, so a damaged file
    // fails to open instead of loading silently. Readable by HDF5 >= 1.8 (h5py, h5dump).
    H5Pset_libver_bounds(fapl.get(), H5F_LIBVER_V18, H5F_LIBVER_LATEST);
    // Page-align large tensors (>= 64 KiB) for efficient writes and reads.
    H5Pset_alignment(fapl.get(), 64 * 1024, 4096);
  }
  return fapl;
}

std::vector<hsize_t> to_hsize(const std::vector<int64_t>& dims) {
  return std::vector<hsize_t>(dims.begin(), dims.end());
}

bool link_exists(hid_t file, const std::string& path) {
  // H5Lexists needs every intermediate group to exist, so walk the path component by component.
  size_t pos = 0;
  while (true) {
    pos = path.find('/', pos + 1);
    std::string prefix = path.substr(0, pos);
    if (prefix.empty() || prefix == "/") {
      if (pos == std::string::npos) return true;
      continue;
    }
    htri_t exists = H5Lexists(file, prefix.c_str(), H5P_DEFAULT);
    if (exists <= 0) return false;
    if (pos == std::string::npos) return true;
  }
}

}  // namespace

bool Handle::close() {
  if (id_ < 0) return true;
  herr_t rc;
  switch (H5Iget_type(id_)) {
    case H5I_FILE:
      rc = H5Fclose(id_);
      if (rc < 0) g_file_close_failed.store(true);  // its ID now dangles: see quiet()
      break;
    case H5I_GROUP:
      rc = H5Gclose(id_);
      break;
    case H5I_DATASET:
      rc = H5Dclose(id_);
      break;
    case H5I_DATASPACE:
      rc = H5Sclose(id_);
      break;
    case H5I_DATATYPE:
      rc = H5Tclose(id_);
      break;
    case H5I_ATTR:
      rc = H5Aclose(id_);
      break;
    case H5I_GENPROP_LST:
      rc = H5Pclose(id_);
      break;
    default:
      rc = H5Idec_ref(id_);
      break;
  }
  id_ = H5I_INVALID_HID;
  return rc >= 0;
}

void quiet() {
  static std::once_flag once;
  std::call_once(once, [] {
    // HDF5 1.10 (Debian 12 ships 1.10.8) frees a file whose final flush failed (disk full,
    // file too large) but leaves its ID in the ID table: the fd is closed and nothing can be
    // done with the ID, yet the library's exit-time clean-up (H5_term_library) closes it
    // again and crashes (SIGSEGV in H5F__close_cb; HDF5 fixed it in 1.14.1). So the library
    // does not register its own clean-up: ours runs H5close() at exit unless an H5Fclose
    // failed, in which case the process leaves HDF5's memory to the kernel. Must come before
    // the first HDF5 call of the process (it is, in this library).
    H5dont_atexit();
    std::atexit(shut_down_hdf5);
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  });
}

std::string error_stack() {
  std::vector<std::string> lines;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, collect, &lines);
  H5Eclear2(H5E_DEFAULT);
  if (lines.empty()) return {};
  // The innermost entry says what actually went wrong; the outermost which API call failed.
  if (lines.size() == 1) return lines.front();
  return lines.front() + "; " + lines.back();
}

// ---- Writing -------------------------------------------------------------------------------

Handle create_file(const std::filesystem::path& path) {
  quiet();
  Handle fapl = file_access_plist(true);
  return Handle(check_id(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.get()),
                         "create the file", path));
}

void close_file(Handle& file, const std::filesystem::path& path) {
  if (!file.close()) {
    fail(ErrorKind::kRuntime, "HDF5 failed to flush and close the file", path,
         "check that the disk is not full");
  }
}

Handle create_group(hid_t loc, const std::string& name, const std::filesystem::path& file) {
  return Handle(check_id(H5Gcreate2(loc, name.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                         "create group " + name, file));
}

uint64_t write_dataset(hid_t loc, const std::string& name, hid_t file_type, hid_t mem_type,
                       const std::vector<int64_t>& dims, const void* data, size_t bytes,
                       const std::filesystem::path& file) {
  const std::string what = "dataset " + name;
  Handle space;
  if (dims.empty()) {
    space = Handle(check_id(H5Screate(H5S_SCALAR), "create the dataspace of " + what, file));
  } else {
    auto hdims = to_hsize(dims);
    space = Handle(check_id(H5Screate_simple(static_cast<int>(hdims.size()), hdims.data(), nullptr),
                            "create the dataspace of " + what, file));
  }
  Handle dcpl(check_id(H5Pcreate(H5P_DATASET_CREATE), "create a property list", file));
  // Contiguous, no filters: one large write per tensor, and h5py/h5dump read it directly.
  check_call(H5Pset_layout(dcpl.get(), H5D_CONTIGUOUS), "set the layout of " + what, file);
  // Every byte is written right away; HDF5 need not fill the space first.
  check_call(H5Pset_fill_time(dcpl.get(), H5D_FILL_TIME_NEVER), "set the fill time of " + what,
             file);
  Handle dset(check_id(
      H5Dcreate2(loc, name.c_str(), file_type, space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT),
      "create " + what, file));
  if (bytes > 0) {
    check_call(H5Dwrite(dset.get(), mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data), "write " + what,
               file);
  }
  uint64_t sum = xxh3(data, bytes);
  Handle aspace(check_id(H5Screate(H5S_SCALAR), "create an attribute dataspace", file));
  Handle attr(check_id(
      H5Acreate2(dset.get(), kChecksumAttr, H5T_STD_U64LE, aspace.get(), H5P_DEFAULT, H5P_DEFAULT),
      "create the checksum attribute of " + what, file));
  check_call(H5Awrite(attr.get(), H5T_NATIVE_UINT64, &sum),
             "write the checksum attribute of " + what, file);
  return sum;
}

void write_attr_i64(hid_t obj, const std::string& name, int64_t value,
                    const std::filesystem::path& file) {
  Handle space(check_id(H5Screate(H5S_SCALAR), "create an attribute dataspace", file));
  Handle attr(
      check_id(H5Acreate2(obj, name.c_str(), H5T_STD_I64LE, space.get(), H5P_DEFAULT, H5P_DEFAULT),
               "create attribute " + name, file));
  check_call(H5Awrite(attr.get(), H5T_NATIVE_INT64, &value), "write attribute " + name, file);
}

Handle string_type(size_t size) {
  quiet();
  Handle type(H5Tcopy(H5T_C_S1));
  if (!type.valid() || H5Tset_size(type.get(), size == 0 ? 1 : size) < 0 ||
      H5Tset_strpad(type.get(), H5T_STR_NULLPAD) < 0) {
    throw Error(ErrorKind::kRuntime, with_stack("HDF5 failed to make a string type"));
  }
  return type;
}

void write_attr_string(hid_t obj, const std::string& name, const std::string& value,
                       const std::filesystem::path& file) {
  Handle type = string_type(value.size());
  std::string padded = value.empty() ? std::string(1, '\0') : value;
  Handle space(check_id(H5Screate(H5S_SCALAR), "create an attribute dataspace", file));
  Handle attr(
      check_id(H5Acreate2(obj, name.c_str(), type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT),
               "create attribute " + name, file));
  check_call(H5Awrite(attr.get(), type.get(), padded.data()), "write attribute " + name, file);
}

// ---- Reading -------------------------------------------------------------------------------

void require_signature(const std::filesystem::path& path) {
  quiet();
  if (H5Fis_hdf5(path.c_str()) == 0) {  // reads the signature only
    throw Error(
        ErrorKind::kUsage,
        fmt::format("{} is not an HDF5 file; is the checkpoint directory correct?", path.string()));
  }
  H5Eclear2(H5E_DEFAULT);
}

Handle open_file(const std::filesystem::path& path) {
  quiet();
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    throw Error(ErrorKind::kUsage, fmt::format("checkpoint shard {} is missing", path.string()),
                "is the checkpoint directory correct? resume from an older step if it was lost");
  }
  if (!std::filesystem::is_regular_file(path, ec)) {
    throw Error(ErrorKind::kUsage, fmt::format("{} is not a regular file", path.string()),
                "is the checkpoint directory correct?");
  }
  Handle fapl = file_access_plist(false);
  require_signature(path);
  hid_t id = H5Fopen(path.c_str(), H5F_ACC_RDONLY, fapl.get());
  if (id < 0) {
    fail(ErrorKind::kUsage, "cannot open the HDF5 file (truncated or damaged?)", path,
         "resume from an older step or restore the file");
  }
  return Handle(id);
}

std::optional<DatasetView> open_dataset(hid_t file, const std::string& path,
                                        const std::filesystem::path& file_path) {
  if (!link_exists(file, path)) {
    H5Eclear2(H5E_DEFAULT);
    return std::nullopt;
  }
  DatasetView view;
  view.dataset = Handle(H5Dopen2(file, path.c_str(), H5P_DEFAULT));
  if (!view.dataset.valid()) fail_read("cannot open dataset " + path, file_path);
  view.type = Handle(H5Dget_type(view.dataset.get()));
  Handle space(H5Dget_space(view.dataset.get()));
  if (!view.type.valid() || !space.valid()) fail_read("cannot read the type of " + path, file_path);
  int rank = H5Sget_simple_extent_ndims(space.get());
  if (rank < 0) fail_read("cannot read the shape of " + path, file_path);
  std::vector<hsize_t> dims(static_cast<size_t>(rank));
  if (rank > 0 && H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr) < 0) {
    fail_read("cannot read the shape of " + path, file_path);
  }
  size_t count = 1;
  for (hsize_t d : dims) {
    view.shape.push_back(static_cast<int64_t>(d));
    count *= static_cast<size_t>(d);
  }
  view.bytes = count * H5Tget_size(view.type.get());
  return view;
}

std::vector<char> read_raw(const DatasetView& view, const std::string& path,
                           const std::filesystem::path& file_path) {
  std::vector<char> bytes(view.bytes);
  if (!bytes.empty() && H5Dread(view.dataset.get(), view.type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT,
                                bytes.data()) < 0) {
    fail_read("cannot read dataset " + path, file_path);
  }
  return bytes;
}

uint64_t hash_dataset(const DatasetView& view, const std::string& path,
                      const std::filesystem::path& file_path, size_t slice_bytes) {
  if (view.shape.empty() || view.bytes <= slice_bytes) {
    auto bytes = read_raw(view, path, file_path);
    return xxh3(bytes.data(), bytes.size());
  }
  const hsize_t rows = static_cast<hsize_t>(view.shape[0]);
  const size_t row_bytes = view.bytes / rows;
  const hsize_t rows_per_slice = std::max<hsize_t>(1, slice_bytes / std::max<size_t>(row_bytes, 1));
  std::vector<char> buffer(rows_per_slice * row_bytes);
  std::unique_ptr<XXH3_state_t, decltype(&XXH3_freeState)> state(XXH3_createState(),
                                                                 &XXH3_freeState);
  XXH3_64bits_reset(state.get());
  Handle file_space(H5Dget_space(view.dataset.get()));
  if (!file_space.valid()) fail_read("cannot read the dataspace of " + path, file_path);
  std::vector<hsize_t> start(view.shape.size(), 0);
  std::vector<hsize_t> count(view.shape.begin(), view.shape.end());
  for (hsize_t row = 0; row < rows; row += rows_per_slice) {
    start[0] = row;
    count[0] = std::min(rows_per_slice, rows - row);
    Handle mem_space(H5Screate_simple(static_cast<int>(count.size()), count.data(), nullptr));
    if (!mem_space.valid() ||
        H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, start.data(), nullptr, count.data(),
                            nullptr) < 0 ||
        H5Dread(view.dataset.get(), view.type.get(), mem_space.get(), file_space.get(), H5P_DEFAULT,
                buffer.data()) < 0) {
      fail_read("cannot read dataset " + path, file_path);
    }
    XXH3_64bits_update(state.get(), buffer.data(), count[0] * row_bytes);
  }
  return XXH3_64bits_digest(state.get());
}

void read_float32(const DatasetView& view, float* out, const std::string& path,
                  const std::filesystem::path& file_path) {
  if (H5Tget_class(view.type.get()) != H5T_FLOAT || H5Tget_size(view.type.get()) != 4) {
    throw Error(ErrorKind::kUsage,
                fmt::format("dataset {} in {} is not float32", path, file_path.string()),
                "this checkpoint was not written by conveyor, or by an incompatible version");
  }
  if (view.bytes > 0 &&
      H5Dread(view.dataset.get(), H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) < 0) {
    fail_read("cannot read dataset " + path, file_path);
  }
}

std::optional<uint64_t> read_checksum_attr(const DatasetView& view, const std::string& path,
                                           const std::filesystem::path& file_path) {
  htri_t exists = H5Aexists(view.dataset.get(), kChecksumAttr);
  if (exists < 0) fail_read("cannot read the attributes of " + path, file_path);
  if (exists == 0) return std::nullopt;
  Handle attr(H5Aopen(view.dataset.get(), kChecksumAttr, H5P_DEFAULT));
  uint64_t value = 0;
  if (!attr.valid() || H5Aread(attr.get(), H5T_NATIVE_UINT64, &value) < 0) {
    fail_read("cannot read the checksum attribute of " + path, file_path);
  }
  return value;
}

std::optional<int64_t> read_root_attr_i64(hid_t file, const std::string& name,
                                          const std::filesystem::path& file_path) {
  htri_t exists = H5Aexists_by_name(file, "/", name.c_str(), H5P_DEFAULT);
  if (exists < 0) fail_read("cannot read the root attributes", file_path);
  if (exists == 0) return std::nullopt;
  Handle attr(H5Aopen_by_name(file, "/", name.c_str(), H5P_DEFAULT, H5P_DEFAULT));
  int64_t value = 0;
  if (!attr.valid() || H5Aread(attr.get(), H5T_NATIVE_INT64, &value) < 0) {
    fail_read("cannot read root attribute " + name, file_path);
  }
  return value;
}

}  // namespace conveyor::checkpoint::h5
