# The rooms of the source tree and what each may include, read from cmake/layers.txt (the one
# table; tests/unit/structure/layering_test.cc holds the includes to it).
#
# conveyor_room(<folder> [SOURCES globs...] [EXCLUDE files...]) builds the room's library from
# the folder's *.cc files (plus the globs, less the files), named conveyor_<folder with / as _>, and links it to the
# libraries of the rooms the table lets it include. A room with no sources yet becomes an
# INTERFACE library, so the tree always configures. The caller adds outside dependencies with
# target_link_libraries(<target> ${<target>_SCOPE} ...).
file(STRINGS ${PROJECT_SOURCE_DIR}/cmake/layers.txt conveyor_layer_lines REGEX "^[a-z/]+:")
set_property(DIRECTORY ${PROJECT_SOURCE_DIR} APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS
             ${PROJECT_SOURCE_DIR}/cmake/layers.txt)

function(conveyor_room_target folder out)
  string(REPLACE "/" "_" name "${folder}")
  set(${out} conveyor_${name} PARENT_SCOPE)
endfunction()

function(conveyor_room folder)
  cmake_parse_arguments(PARSE_ARGV 1 room "" "" "SOURCES;EXCLUDE")
  conveyor_room_target(${folder} target)
  set(allowed "")
  foreach(line ${conveyor_layer_lines})
    if(line MATCHES "^${folder}:(.*)$")
      string(STRIP "${CMAKE_MATCH_1}" deps)
      string(REGEX REPLACE "[ \t]+" ";" allowed "${deps}")
      set(found TRUE)
    endif()
  endforeach()
  if(NOT found)
    message(FATAL_ERROR "${folder} is not a room of cmake/layers.txt: add it there first")
  endif()
  file(GLOB sources CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/*.cc ${room_SOURCES})
  foreach(excluded ${room_EXCLUDE})
    list(REMOVE_ITEM sources ${CMAKE_CURRENT_SOURCE_DIR}/${excluded})
  endforeach()
  if(sources)
    add_library(${target} STATIC ${sources})
    set(scope PUBLIC)
  else()
    add_library(${target} INTERFACE)
    set(scope INTERFACE)
  endif()
  foreach(dep ${allowed})
    conveyor_room_target(${dep} dep_target)
    target_link_libraries(${target} ${scope} ${dep_target})
  endforeach()
  set(${target}_SCOPE ${scope} PARENT_SCOPE)
endfunction()
