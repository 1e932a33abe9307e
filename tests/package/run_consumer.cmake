# Builds tests/package/consumer against tinyattn (MODE = find_package | add_subdirectory |
# fetchcontent) in WORK_DIR, then runs it. find_package installs tinyattn into WORK_DIR/prefix first.
file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${WORK_DIR})
function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE status OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT status EQUAL 0)
    message(FATAL_ERROR "failed (${status}): ${ARGN}\n${out}\n${err}")
  endif()
endfunction()
set(common -G ${GENERATOR} -DCMAKE_CXX_COMPILER=${CXX} -DCMAKE_BUILD_TYPE=Release)
if(MODE STREQUAL "find_package")
  run(${CMAKE_COMMAND} -S ${SOURCE_DIR} -B ${WORK_DIR}/tinyattn-build ${common} -DTINYATTN_BUILD_TESTS=OFF
      -DTINYATTN_BUILD_EXAMPLES=OFF -DTINYATTN_BUILD_BENCH=OFF -DTINYATTN_CUDA=OFF
      -DCMAKE_INSTALL_PREFIX=${WORK_DIR}/prefix)
  run(${CMAKE_COMMAND} --build ${WORK_DIR}/tinyattn-build)
  run(${CMAKE_COMMAND} --install ${WORK_DIR}/tinyattn-build)
  if(NOT EXISTS ${WORK_DIR}/prefix/share/cmake/tinyattn/tinyattnConfigVersion.cmake)
    message(FATAL_ERROR "install did not write tinyattnConfigVersion.cmake")
  endif()
  set(extra -DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix)
else()
  set(extra -DTINYATTN_SOURCE_DIR=${SOURCE_DIR})
endif()
run(${CMAKE_COMMAND} -S ${SOURCE_DIR}/tests/package/consumer -B ${WORK_DIR}/consumer-build ${common}
    -DMODE=${MODE} ${extra})
run(${CMAKE_COMMAND} --build ${WORK_DIR}/consumer-build)
run(${WORK_DIR}/consumer-build/consumer)
message(STATUS "consumer built with ${MODE} and ran")
