# cmake -DCXX=... -DFLAGS=a;b;c -DSOURCES=x.cpp;y.cpp -P compile_each.cmake
# Compiles each source with FLAGS (the -march string is split on spaces) to a throwaway object and
# fails on the first error, naming the file and the flags.
set(flags "")
foreach(f IN LISTS FLAGS)
  separate_arguments(parts UNIX_COMMAND "${f}")
  list(APPEND flags ${parts})
endforeach()
if(NOT SOURCES)
  message(FATAL_ERROR "compile matrix: no sources with Highway or intrinsics found")
endif()
foreach(src IN LISTS SOURCES)
  execute_process(COMMAND ${CXX} ${flags} -c ${src} -o /dev/null
                  RESULT_VARIABLE rc ERROR_VARIABLE err OUTPUT_QUIET)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "compile matrix: ${src} fails with ${flags}\n${err}")
  endif()
  message(STATUS "ok: ${src}")
endforeach()
