# The stream framing alone (varints, message reassembly): no ngtcp2 needed.
post_add_boost_test(test_quic_framing
  SOURCES unit/test_quic_framing.cpp ${CMAKE_CURRENT_LIST_DIR}/../plugins/quic/quic_framing.cpp
  LABELS unit quic TIMEOUT 60)
target_include_directories(test_quic_framing PRIVATE ${CMAKE_CURRENT_LIST_DIR}/../plugins/quic)

# Tests of the quic plugin over real loopback UDP (static plugin twins: no dlopen): our client
# against our server in one process, with a test PKI generated at run time.
if(TARGET post_plugin_quic)
  get_filename_component(POST_QUIC_SRC ${CMAKE_CURRENT_LIST_DIR}/../plugins/quic ABSOLUTE)
  post_add_boost_test(test_quic
    SOURCES ${CMAKE_CURRENT_LIST_DIR}/integration/test_quic.cpp
            ${CMAKE_CURRENT_LIST_DIR}/support/test_pki.cpp
    LIBRARIES post_plugin_udp_static post_plugin_quic_static OpenSSL::Crypto
    LABELS integration plugins quic
    TIMEOUT 60)
  target_include_directories(test_quic PRIVATE ${POST_QUIC_SRC})
endif()

# Through the kernel, from policies: [quic, udp] carriers, fork() as a new stream, a stream
# opened by the server.
if(TARGET post_plugin_quic)
  post_add_boost_test(test_quic_carriers SOURCES integration/test_quic_carriers.cpp
    support/test_pki.cpp
    LIBRARIES PostSockets::kernel OpenSSL::Crypto LABELS integration quic TIMEOUT 60)
  target_compile_definitions(test_quic_carriers PRIVATE
    POST_PLUGIN_DIR="${POST_PLUGIN_OUTPUT_DIR}")
  foreach(p udp quic tcp framing)
    add_dependencies(test_quic_carriers post_plugin_${p})
  endforeach()
endif()

# HTTP/3 through the kernel: [h3, quic, udp], our client against our server (docs/http.md).
if(TARGET post_plugin_quic)
  post_add_boost_test(test_h3 SOURCES integration/test_h3.cpp support/test_pki.cpp
    LIBRARIES PostSockets::kernel OpenSSL::Crypto LABELS integration quic http TIMEOUT 60)
  target_compile_definitions(test_h3 PRIVATE POST_PLUGIN_DIR="${POST_PLUGIN_OUTPUT_DIR}")
  foreach(p udp quic tcp framing)
    add_dependencies(test_h3 post_plugin_${p})
  endforeach()
endif()
