# Tests of the sctp plugin over real loopback UDP (static plugin twins: no dlopen): our client
# against our server in one process, garbage and truncated datagrams, abort, close.
if(TARGET post_plugin_sctp)
  get_filename_component(POST_SCTP_SRC ${CMAKE_CURRENT_LIST_DIR}/../plugins/sctp ABSOLUTE)
  post_add_boost_test(test_sctp
    SOURCES ${CMAKE_CURRENT_LIST_DIR}/integration/test_sctp.cpp
    LIBRARIES post_plugin_udp_static post_plugin_sctp_static
    LABELS integration plugins sctp
    TIMEOUT 60)
  target_include_directories(test_sctp PRIVATE ${POST_SCTP_SRC})
endif()
