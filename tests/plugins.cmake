# Tests of the tcp, udp and framing plugins (their static twins: no dlopen).
set(POST_PLUGINS_TEST_ROOT ${CMAKE_CURRENT_LIST_DIR})
get_filename_component(POST_PLUGINS_SRC_ROOT ${CMAKE_CURRENT_LIST_DIR}/../plugins ABSOLUTE)

# The framing decoder alone: sans-I/O, no Asio.
post_add_boost_test(test_framing_decoder
  SOURCES ${POST_PLUGINS_TEST_ROOT}/unit/test_framing_decoder.cpp
          ${POST_PLUGINS_SRC_ROOT}/framing/frame_decoder.cpp
  LABELS unit plugins)
target_include_directories(test_framing_decoder PRIVATE ${POST_PLUGINS_SRC_ROOT}/framing)

# The three layers over real loopback sockets.
post_add_boost_test(test_layers
  SOURCES ${POST_PLUGINS_TEST_ROOT}/integration/test_layers.cpp
  LIBRARIES post_plugin_tcp_static post_plugin_udp_static post_plugin_framing_static
  LABELS integration plugins
  TIMEOUT 60)
post_add_boost_test(test_udp_segments SOURCES ${POST_PLUGINS_TEST_ROOT}/integration/test_udp_segments.cpp LIBRARIES post_plugin_udp_static LABELS integration plugins TIMEOUT 60)
