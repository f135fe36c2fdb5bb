# Fuzzing the policy parser and engine. Build with clang in its own tree:
#   CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DPOST_FUZZ=ON -DPOST_BUILD_TESTS=OFF
#   ninja -C build-fuzz fuzz_policy
#   build-fuzz/fuzz/fuzz_policy -max_total_time=60 <scratch corpus dir> tests/fuzz/corpus/policy
post_add_fuzzer(fuzz_policy
  SOURCES fuzz_policy.cpp ${CMAKE_CURRENT_SOURCE_DIR}/../unit/test_policy_catalog.cpp
  LIBRARIES postsockets_policy)
# Instrument the engine itself, not only the harness, so that the fuzzer is guided by coverage
# of the code under test (this build tree is for fuzzing only).
target_compile_options(postsockets_policy PRIVATE -fsanitize=fuzzer-no-link,address,undefined)
