# The ISA compile matrix (ctest label `portability`): every translation unit of src/ that includes
# Highway or x86 intrinsics is compiled (compile only, -O2, no link) for each CPU class people run
# evomerge on, because the default build tunes for the machine it is built on (-march=native) and a
# green build on one CPU says nothing about another (Highway 1.0.3's AVX3_DL bug broke only
# AVX3_DL-class CPUs). Files are found by content at configure time (an include of Highway, of an
# <...intrin.h> header or of infer/avx512_intrinsics.h, the wrapper of <immintrin.h>), so a new
# kernel file joins the matrix by itself.
#
# GCC 12 has no -march=znver4: Zen 4 is what -march=native gives there, znver3 plus the AVX-512
# features the CPU reports, spelled out below.
set(EVOMERGE_MATRIX_MARCHES
    "x86-64-v2" "x86-64-v3" "x86-64-v4" "icelake-server" "sapphirerapids"
    "znver3 -mavx512f -mavx512cd -mavx512bw -mavx512dq -mavx512vl -mavx512ifma -mavx512vbmi -mavx512vbmi2 -mavx512vnni -mavx512bitalg -mavx512vpopcntdq -mavx512bf16 -mgfni -mvaes -mvpclmulqdq")
set(EVOMERGE_MATRIX_NAMES x86-64-v2 x86-64-v3 x86-64-v4 icelake-server sapphirerapids znver4)

file(GLOB_RECURSE _matrix_candidates CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/src/*.cpp)
set(EVOMERGE_MATRIX_SOURCES "")
foreach(f IN LISTS _matrix_candidates)
  file(STRINGS ${f} _hits REGEX "#[ \t]*include[ \t]*[<\"](hwy/|[a-z0-9]*intrin\\.h|infer/avx512_intrinsics\\.h)")
  if(_hits)
    list(APPEND EVOMERGE_MATRIX_SOURCES ${f})
  endif()
endforeach()

set(_matrix_defs "")
foreach(d IN LISTS EVOMERGE_PROJECT_DEFINITIONS)
  list(APPEND _matrix_defs "-D${d}")
endforeach()

list(LENGTH EVOMERGE_MATRIX_NAMES _n)
math(EXPR _last "${_n} - 1")
foreach(i RANGE ${_last})
  list(GET EVOMERGE_MATRIX_NAMES ${i} name)
  list(GET EVOMERGE_MATRIX_MARCHES ${i} march)
  add_test(NAME portability.compile.${name}
           COMMAND ${CMAKE_COMMAND}
                   -DCXX=${CMAKE_CXX_COMPILER}
                   "-DFLAGS=-std=c++20;-O2;-Wall;-Werror=return-type;-I${PROJECT_SOURCE_DIR}/src;${_matrix_defs};-march=${march}"
                   "-DSOURCES=${EVOMERGE_MATRIX_SOURCES}"
                   -P ${PROJECT_SOURCE_DIR}/cmake/compile_each.cmake)
  set_tests_properties(portability.compile.${name} PROPERTIES LABELS portability TIMEOUT 600)
endforeach()
