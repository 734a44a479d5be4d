# CONVEYOR_CUDA=AUTO builds the CUDA backend when nvcc is found; ON requires it; OFF skips it.
set(CONVEYOR_HAVE_CUDA OFF)
if(NOT CONVEYOR_CUDA STREQUAL "OFF")
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    # Before enable_language, which otherwise fills in the compiler's own default (sm_75 for
    # nvcc 13). 90 = sm_90 machine code for H100/H200; scripts/gpu-bundle.sh adds PTX.
    if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
      set(CMAKE_CUDA_ARCHITECTURES 90)
    endif()
    # The shared runtime, the one CUDA::cudart (kernels, transport) links: a second, static
    # copy in the same binary would keep its own state.
    set(CMAKE_CUDA_RUNTIME_LIBRARY Shared)
    enable_language(CUDA)
    find_package(CUDAToolkit QUIET)
    if(CUDAToolkit_FOUND)
      set(CONVEYOR_HAVE_CUDA ON)
    endif()
  endif()
  if(CONVEYOR_CUDA STREQUAL "ON" AND NOT CONVEYOR_HAVE_CUDA)
    message(FATAL_ERROR "conveyor: CONVEYOR_CUDA=ON but nvcc/CUDA Toolkit was not found. "
                        "Install the CUDA Toolkit or configure with -DCONVEYOR_CUDA=OFF.")
  endif()
endif()
message(STATUS "conveyor: CUDA backend ${CONVEYOR_HAVE_CUDA}")
