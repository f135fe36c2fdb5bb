# Typed messages: the codecs on their own, typed carriers over the real TCP/UDP/framer plugins
# on loopback, and the typed_chat example run as a test.
# The codecs are header-only and need no kernel: the SDK target only gives the include path.
post_add_boost_test(test_codecs SOURCES unit/test_codecs.cpp
  LIBRARIES PostSockets::sdk nlohmann_json::nlohmann_json)

post_add_boost_test(test_typed_carrier SOURCES integration/test_typed_carrier.cpp
  LIBRARIES PostSockets::kernel nlohmann_json::nlohmann_json TIMEOUT 120)
target_compile_definitions(test_typed_carrier PRIVATE
  POST_PLUGIN_DIR="${POST_PLUGIN_OUTPUT_DIR}")

add_executable(example_typed_chat ${PROJECT_SOURCE_DIR}/docs/examples/typed_chat.cpp)
target_link_libraries(example_typed_chat PRIVATE PostSockets::kernel
  nlohmann_json::nlohmann_json)
set_target_properties(example_typed_chat PROPERTIES
  RUNTIME_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR}/tests)
add_test(NAME example_typed_chat COMMAND example_typed_chat)
set_tests_properties(example_typed_chat PROPERTIES TIMEOUT 30
  PASS_REGULAR_EXPRESSION "typed_chat: 5 events, conversation as expected")

foreach(p tcp udp framing)
  if(TARGET post_plugin_${p})
    add_dependencies(test_typed_carrier post_plugin_${p})
    add_dependencies(example_typed_chat post_plugin_${p})
  endif()
endforeach()
