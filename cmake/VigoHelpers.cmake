# Helpers that give every Vigo target the same warnings and hardening.
# Third-party code (gRPC, protobuf generated sources) never gets -Werror.

add_library(vigo_warnings INTERFACE)
target_compile_options(vigo_warnings INTERFACE
  -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wvla -Wimplicit-fallthrough
  -Wnon-virtual-dtor
  # GCC's flow analysis under the sanitizers reports false "may be used
  # uninitialized" inside libstdc++ (<regex>, std::function); sanitizer
  # builds only, the normal build keeps the warning as an error.
  $<$<AND:$<CXX_COMPILER_ID:GNU>,$<OR:$<BOOL:${VIGO_ASAN}>,$<BOOL:${VIGO_UBSAN}>>>:-Wno-maybe-uninitialized>)

add_library(vigo_hardening INTERFACE)
target_compile_options(vigo_hardening INTERFACE
  -fstack-protector-strong -fPIE
  $<$<NOT:$<CONFIG:Debug>>:-D_FORTIFY_SOURCE=2>)
target_link_options(vigo_hardening INTERFACE
  -pie -Wl,-z,relro,-z,now,-z,noexecstack)

if(VIGO_ASAN)
  add_compile_options(-fsanitize=address -fno-omit-frame-pointer)
  add_link_options(-fsanitize=address)
endif()
if(VIGO_UBSAN)
  add_compile_options(-fsanitize=undefined -fno-sanitize-recover=undefined)
  add_link_options(-fsanitize=undefined)
endif()
if(VIGO_ASAN OR VIGO_UBSAN)
  # Sanitizer runtimes need extra syscalls inside the seccomp filters; see
  # SECURITY.md "Sanitizer builds".
  add_compile_definitions(VIGO_SANITIZER_BUILD=1)
endif()

# vigo_cc_library(NAME SRCS ... DEPS ... [PRIVATE_DEPS ...])
function(vigo_cc_library name)
  cmake_parse_arguments(ARG "" "" "SRCS;DEPS;PRIVATE_DEPS" ${ARGN})
  add_library(${name} STATIC ${ARG_SRCS})
  target_include_directories(${name} PUBLIC ${CMAKE_SOURCE_DIR})
  target_link_libraries(${name} PUBLIC ${ARG_DEPS}
    PRIVATE ${ARG_PRIVATE_DEPS} vigo_warnings vigo_hardening)
endfunction()

# vigo_cc_binary(NAME SRCS ... DEPS ...)
function(vigo_cc_binary name)
  cmake_parse_arguments(ARG "" "" "SRCS;DEPS" ${ARGN})
  add_executable(${name} ${ARG_SRCS})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} vigo_warnings vigo_hardening)
endfunction()

# vigo_cc_test(NAME SRCS ... DEPS ... LABELS ... [TIMEOUT s])
# One ctest entry per test binary; the label selects the suite
# (unit, property, sandbox, integration, fuzz-smoke).
function(vigo_cc_test name)
  cmake_parse_arguments(ARG "" "TIMEOUT" "SRCS;DEPS;LABELS" ${ARGN})
  add_executable(${name} ${ARG_SRCS})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} GTest::gtest GTest::gmock
    GTest::gtest_main vigo_warnings)
  set_target_properties(${name} PROPERTIES
    RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
  add_test(NAME ${name} COMMAND ${name})
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 300)
  endif()
  set_tests_properties(${name} PROPERTIES LABELS "${ARG_LABELS}"
    TIMEOUT ${ARG_TIMEOUT}
    ENVIRONMENT "VIGO_BIN_DIR=${CMAKE_BINARY_DIR}/bin;VIGO_TEST_BIN_DIR=${CMAKE_BINARY_DIR}/tests;VIGO_SOURCE_DIR=${CMAKE_SOURCE_DIR}")
endfunction()
