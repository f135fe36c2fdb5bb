# Fuzzer for the post-frame decoder (layer `framer`): arbitrary bytes with and without a valid
# preface in front.
post_add_fuzzer(fuzz_post_frame
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/fuzz_post_frame.cpp
          ${PROJECT_SOURCE_DIR}/plugins/framing/post_frame_codec.cpp
  LIBRARIES PostSockets::sdk)
target_include_directories(fuzz_post_frame PRIVATE ${PROJECT_SOURCE_DIR}/plugins/framing)
