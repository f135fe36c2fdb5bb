# Kernel tests: URL parsing, the plugin loader (with deliberately broken plugins), and carriers
# over the real TCP/UDP/framer plugins on loopback.
set(POST_BAD_PLUGIN_DIR ${PROJECT_BINARY_DIR}/tests/bad-plugins)
foreach(bad wrong_abi no_descriptor unknown_feature)
  add_library(post_test_${bad} MODULE unit/bad_plugins/${bad}.cpp)
  target_link_libraries(post_test_${bad} PRIVATE PostSockets::sdk)
  set_target_properties(post_test_${bad} PROPERTIES PREFIX "lib" OUTPUT_NAME post-${bad}
    LIBRARY_OUTPUT_DIRECTORY ${POST_BAD_PLUGIN_DIR} CXX_VISIBILITY_PRESET hidden)
endforeach()

post_add_boost_test(test_url SOURCES unit/test_url.cpp LIBRARIES PostSockets::kernel)
post_add_boost_test(test_registry SOURCES unit/test_registry.cpp LIBRARIES PostSockets::kernel)
target_compile_definitions(test_registry PRIVATE POST_BAD_PLUGIN_DIR="${POST_BAD_PLUGIN_DIR}"
  POST_PLUGIN_DIR="${POST_PLUGIN_OUTPUT_DIR}")
add_dependencies(test_registry post_test_wrong_abi post_test_no_descriptor
  post_test_unknown_feature)

post_add_boost_test(test_carrier SOURCES integration/test_carrier.cpp
  LIBRARIES PostSockets::kernel TIMEOUT 120)
target_compile_definitions(test_carrier PRIVATE POST_PLUGIN_DIR="${POST_PLUGIN_OUTPUT_DIR}")
post_add_boost_test(test_listener_roles SOURCES integration/test_listener_roles.cpp
  LIBRARIES PostSockets::kernel TIMEOUT 60)
target_compile_definitions(test_listener_roles PRIVATE POST_PLUGIN_DIR="${POST_PLUGIN_OUTPUT_DIR}")
foreach(p tcp udp framing)
  if(TARGET post_plugin_${p})
    add_dependencies(test_registry post_plugin_${p})
    add_dependencies(test_carrier post_plugin_${p})
    add_dependencies(test_listener_roles post_plugin_${p})
  endif()
endforeach()

post_add_boost_test(test_conformance SOURCES integration/test_conformance.cpp
  support/test_pki.cpp
  LIBRARIES PostSockets::kernel OpenSSL::Crypto TIMEOUT 120)
target_compile_definitions(test_conformance PRIVATE POST_PLUGIN_DIR="${POST_PLUGIN_OUTPUT_DIR}")
foreach(p tcp udp framing tls sctp quic)
  if(TARGET post_plugin_${p})
    add_dependencies(test_conformance post_plugin_${p})
  endif()
endforeach()

# The README's embedding example, built and run as a test so the README stays true.
add_executable(example_hello ${PROJECT_SOURCE_DIR}/docs/examples/hello.cpp)
target_link_libraries(example_hello PRIVATE PostSockets::kernel)
set_target_properties(example_hello PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR}/tests)
add_test(NAME example_hello COMMAND example_hello)
set_tests_properties(example_hello PROPERTIES TIMEOUT 30 PASS_REGULAR_EXPRESSION "hello \\(over framer tcp\\)")

post_add_boost_test(test_association SOURCES unit/test_association.cpp
  LIBRARIES PostSockets::kernel)

post_add_boost_test(test_association_file SOURCES unit/test_association_file.cpp
  ${PROJECT_SOURCE_DIR}/framework/src/kernel/association_file.cpp
  LIBRARIES PostSockets::kernel nlohmann_json::nlohmann_json LABELS unit)
target_include_directories(test_association_file PRIVATE ${PROJECT_SOURCE_DIR}/framework/src/kernel)

post_add_boost_test(test_establishment SOURCES integration/test_establishment.cpp
  LIBRARIES PostSockets::kernel TIMEOUT 60)
target_compile_definitions(test_establishment PRIVATE POST_PLUGIN_DIR="${POST_PLUGIN_OUTPUT_DIR}")
foreach(p tcp udp framing tls)
  if(TARGET post_plugin_${p})
    add_dependencies(test_establishment post_plugin_${p})
  endif()
endforeach()

# The prepared-policy cache (kernel internals: it includes the kernel's private headers).
post_add_boost_test(test_policy_cache SOURCES integration/test_policy_cache.cpp
  LIBRARIES PostSockets::kernel TIMEOUT 60)
target_include_directories(test_policy_cache PRIVATE ${PROJECT_SOURCE_DIR}/framework/src/kernel)
target_compile_definitions(test_policy_cache PRIVATE POST_PLUGIN_DIR="${POST_PLUGIN_OUTPUT_DIR}")
foreach(p tcp framing)
  if(TARGET post_plugin_${p})
    add_dependencies(test_policy_cache post_plugin_${p})
  endif()
endforeach()
