# Tests of the tls plugin over real loopback TCP (static plugin twins: no dlopen): our client and
# server against each other, and against `openssl s_server` / `s_client` (skipped, with a
# message, when the openssl program is missing). The test PKI is generated at run time.
get_filename_component(POST_TLS_SRC ${CMAKE_CURRENT_LIST_DIR}/../plugins/tls ABSOLUTE)

foreach(_tls_test test_tls test_tls_openssl)
  post_add_boost_test(${_tls_test}
    SOURCES ${CMAKE_CURRENT_LIST_DIR}/integration/${_tls_test}.cpp
            ${CMAKE_CURRENT_LIST_DIR}/support/test_pki.cpp
    LIBRARIES post_plugin_tcp_static post_plugin_tls_static OpenSSL::Crypto
    LABELS integration plugins tls
    TIMEOUT 60)
  target_include_directories(${_tls_test} PRIVATE ${POST_TLS_SRC})
endforeach()

# The dtls layer of the same plugin over real loopback UDP, and against openssl s_server/s_client.
foreach(_dtls_test test_dtls test_dtls_openssl)
  post_add_boost_test(${_dtls_test}
    SOURCES ${CMAKE_CURRENT_LIST_DIR}/integration/${_dtls_test}.cpp
            ${CMAKE_CURRENT_LIST_DIR}/support/test_pki.cpp
    LIBRARIES post_plugin_tcp_static post_plugin_udp_static post_plugin_tls_static OpenSSL::Crypto
    LABELS integration plugins tls
    TIMEOUT 60)
  target_include_directories(${_dtls_test} PRIVATE ${POST_TLS_SRC})
endforeach()
