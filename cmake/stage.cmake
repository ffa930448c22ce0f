# evomerge_stage(NAME [DEPS targets...])
# Builds src/NAME/*.cpp (minus *_test.cpp and *_fuzz.cpp) into the static library em_NAME, and
# src/NAME/*_test.cpp into the GoogleTest binary test_NAME, registered with ctest under label NAME.
function(evomerge_stage name)
  cmake_parse_arguments(S "" "" "DEPS" ${ARGN})
  file(GLOB sources CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/*.cpp)
  list(FILTER sources EXCLUDE REGEX "_(test|fuzz)\\.cpp$")
  add_library(em_${name} STATIC ${sources})
  target_include_directories(em_${name} PUBLIC ${PROJECT_SOURCE_DIR}/src)
  target_link_libraries(em_${name} PUBLIC evomerge_options ${S_DEPS})
  set_target_properties(em_${name} PROPERTIES POSITION_INDEPENDENT_CODE ON)
  if(EVOMERGE_BUILD_TESTS)
    file(GLOB tests CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/*_test.cpp)
    if(tests)
      add_executable(test_${name} ${tests})
      target_link_libraries(test_${name} PRIVATE em_${name} evomerge_test_options GTest::gtest GTest::gtest_main)
      gtest_discover_tests(test_${name}
        WORKING_DIRECTORY ${PROJECT_SOURCE_DIR}
        PROPERTIES LABELS ${name}
        DISCOVERY_TIMEOUT 60)
    endif()
  endif()
endfunction()
