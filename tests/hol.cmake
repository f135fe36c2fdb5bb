# Message properties on the `post` command line and the head-of-line benchmark's smoke test
# (tests/cli/properties.sh, tests/cli/bench_hol.sh): real processes on loopback, as cli.cmake.
foreach(test properties bench_hol)
  add_test(NAME cli_${test}
           COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/cli/${test}.sh $<TARGET_FILE:post>)
  set_tests_properties(cli_${test} PROPERTIES
    TIMEOUT 90
    LABELS cli
    ENVIRONMENT "POST_SOURCE_DIR=${PROJECT_SOURCE_DIR};POST_BINARY_DIR=${PROJECT_BINARY_DIR}")
endforeach()
set_tests_properties(cli_bench_hol PROPERTIES TIMEOUT 240)
