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

# Through the kernel, from policies: [sctp, udp] and [sctp, dtls, udp]; multistreaming,
# also against `post listen` in another process.
if(TARGET post_plugin_sctp AND TARGET post_plugin_tls)
  post_add_boost_test(test_sctp_carriers SOURCES integration/test_sctp_carriers.cpp
    support/test_pki.cpp
    LIBRARIES PostSockets::kernel OpenSSL::Crypto LABELS integration sctp TIMEOUT 60)
  target_compile_definitions(test_sctp_carriers PRIVATE POST_PLUGIN_DIR="${POST_PLUGIN_OUTPUT_DIR}"
    POST_TOOL="$<TARGET_FILE:post>")
  foreach(p udp tls sctp)
    add_dependencies(test_sctp_carriers post_plugin_${p})
  endforeach()
  add_dependencies(test_sctp_carriers post)
endif()
