# Tests of the framing plugin's post-frame protocol (layer `framer`): the sans-I/O codec and
# scheduler alone, then the layer over real loopback TCP (static plugin twins: no dlopen).
get_filename_component(POST_FRAMING_SRC ${CMAKE_CURRENT_LIST_DIR}/../plugins/framing ABSOLUTE)

post_add_boost_test(test_post_frame_codec
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/unit/test_post_frame_codec.cpp
          ${POST_FRAMING_SRC}/post_frame_codec.cpp
          ${POST_FRAMING_SRC}/post_frame_scheduler.cpp
  LABELS unit plugins framing)
target_include_directories(test_post_frame_codec PRIVATE ${POST_FRAMING_SRC})

post_add_boost_test(test_post_frame
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/integration/test_post_frame.cpp
  LIBRARIES post_plugin_tcp_static post_plugin_framing_static
  LABELS integration plugins framing
  TIMEOUT 60)
target_include_directories(test_post_frame PRIVATE ${POST_FRAMING_SRC})
