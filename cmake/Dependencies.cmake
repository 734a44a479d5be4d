# Finds every dependency; a missing one stops the configure step with the Debian package
# that provides it. scripts/install-deps.sh installs them all.
find_package(PkgConfig QUIET)

function(conveyor_missing what package)
  message(FATAL_ERROR
    "conveyor: ${what} not found. Install the Debian package '${package}' "
    "(or run scripts/install-deps.sh as root), then configure again.")
endfunction()

if(NOT PkgConfig_FOUND)
  conveyor_missing("pkg-config" "pkg-config")
endif()

find_package(Threads REQUIRED)

pkg_check_modules(UCX IMPORTED_TARGET ucx)
if(NOT UCX_FOUND)
  conveyor_missing("UCX (ucx.pc)" "libucx-dev")
endif()

find_library(IBVERBS_LIBRARY ibverbs)
find_path(IBVERBS_INCLUDE_DIR infiniband/verbs.h)
if(NOT IBVERBS_LIBRARY OR NOT IBVERBS_INCLUDE_DIR)
  conveyor_missing("libibverbs" "libibverbs-dev")
endif()
add_library(conveyor_ibverbs INTERFACE)
target_link_libraries(conveyor_ibverbs INTERFACE ${IBVERBS_LIBRARY})
target_include_directories(conveyor_ibverbs INTERFACE ${IBVERBS_INCLUDE_DIR})

find_library(RDMACM_LIBRARY rdmacm)
if(NOT RDMACM_LIBRARY)
  conveyor_missing("librdmacm" "librdmacm-dev")
endif()

find_package(HDF5 QUIET COMPONENTS C)
if(NOT HDF5_FOUND)
  conveyor_missing("HDF5 (C library)" "libhdf5-dev")
endif()
add_library(conveyor_hdf5 INTERFACE)
target_link_libraries(conveyor_hdf5 INTERFACE ${HDF5_C_LIBRARIES})
target_include_directories(conveyor_hdf5 INTERFACE ${HDF5_C_INCLUDE_DIRS})
target_compile_definitions(conveyor_hdf5 INTERFACE ${HDF5_C_DEFINITIONS})

pkg_check_modules(OPENBLAS IMPORTED_TARGET openblas)
if(NOT OPENBLAS_FOUND)
  conveyor_missing("OpenBLAS (openblas.pc)" "libopenblas-dev")
endif()

find_package(CLI11 QUIET CONFIG)
if(NOT CLI11_FOUND)
  conveyor_missing("CLI11" "libcli11-dev")
endif()

find_package(nlohmann_json QUIET CONFIG)
if(NOT nlohmann_json_FOUND)
  conveyor_missing("nlohmann-json" "nlohmann-json3-dev")
endif()

pkg_check_modules(TOMLPP IMPORTED_TARGET tomlplusplus)
if(NOT TOMLPP_FOUND)
  conveyor_missing("toml++ (tomlplusplus.pc)" "libtomlplusplus-dev")
endif()

find_package(fmt QUIET CONFIG)
if(NOT fmt_FOUND)
  conveyor_missing("fmt" "libfmt-dev")
endif()

find_package(spdlog QUIET CONFIG)
if(NOT spdlog_FOUND)
  conveyor_missing("spdlog" "libspdlog-dev")
endif()

pkg_check_modules(XXHASH IMPORTED_TARGET libxxhash)
if(NOT XXHASH_FOUND)
  conveyor_missing("xxHash (libxxhash.pc)" "libxxhash-dev")
endif()

pkg_check_modules(SENTENCEPIECE IMPORTED_TARGET sentencepiece)
if(NOT SENTENCEPIECE_FOUND)
  conveyor_missing("SentencePiece (sentencepiece.pc)" "libsentencepiece-dev")
endif()

if(CONVEYOR_TESTS)
  find_package(Catch2 QUIET CONFIG)
  if(NOT Catch2_FOUND)
    conveyor_missing("Catch2" "catch2")
  endif()
endif()
