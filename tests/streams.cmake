# Streams: stack selection for byte-stream carriers, post::stream / post::iostream over the real
# TCP plugin on loopback (against Asio sockets, socat and each other), and `post ... --stream`.
post_add_boost_test(test_stream_selection SOURCES unit/test_stream_selection.cpp
  LIBRARIES postsockets_policy LABELS policy)

post_add_boost_test(test_stream SOURCES integration/test_stream.cpp
  LIBRARIES PostSockets::kernel Threads::Threads TIMEOUT 120)
target_compile_definitions(test_stream PRIVATE POST_PLUGIN_DIR="${POST_PLUGIN_OUTPUT_DIR}")

add_test(NAME cli_stream
         COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/cli/stream.sh $<TARGET_FILE:post>)
set_tests_properties(cli_stream PROPERTIES
  TIMEOUT 90
  LABELS cli
  ENVIRONMENT "POST_SOURCE_DIR=${PROJECT_SOURCE_DIR};POST_BINARY_DIR=${PROJECT_BINARY_DIR}")

foreach(p tcp framing)
  if(TARGET post_plugin_${p})
    add_dependencies(test_stream post_plugin_${p})
  endif()
endforeach()
