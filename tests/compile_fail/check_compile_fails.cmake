# Runs the compiler on SOURCE and passes only when compilation FAILS with EXPECTED in its output.
# -D COMPILER= SOURCE= EXPECTED= FLAGS= (a ;-list)
execute_process(COMMAND ${COMPILER} ${FLAGS} -fsyntax-only ${SOURCE}
                RESULT_VARIABLE status OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(status EQUAL 0)
  message(FATAL_ERROR "${SOURCE} compiled, but it must be rejected with: ${EXPECTED}")
endif()
string(FIND "${out}${err}" "${EXPECTED}" found)
if(found EQUAL -1)
  message(FATAL_ERROR "${SOURCE} was rejected, but without the message '${EXPECTED}':\n${err}")
endif()
message(STATUS "rejected as expected: ${EXPECTED}")
