# Fuzzers for the plugins' parsers.
post_add_fuzzer(fuzz_frame_decoder
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/fuzz_frame_decoder.cpp
          ${PROJECT_SOURCE_DIR}/plugins/framing/frame_decoder.cpp
  LIBRARIES PostSockets::sdk)
target_include_directories(fuzz_frame_decoder PRIVATE ${PROJECT_SOURCE_DIR}/plugins/framing)
