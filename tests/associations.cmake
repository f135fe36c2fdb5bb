# Associations across carriers and runs: TLS resumption and 0-RTT through the kernel.
post_add_boost_test(test_tls_carriers SOURCES integration/test_tls_carriers.cpp
  support/test_pki.cpp
  LIBRARIES PostSockets::kernel OpenSSL::Crypto LABELS integration tls TIMEOUT 60)
target_compile_definitions(test_tls_carriers PRIVATE POST_PLUGIN_DIR="${POST_PLUGIN_OUTPUT_DIR}")
foreach(p tcp framing tls)
  if(TARGET post_plugin_${p})
    add_dependencies(test_tls_carriers post_plugin_${p})
  endif()
endforeach()
