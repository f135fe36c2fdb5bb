# Message properties: the kernel's scheduler alone, and honoured end to end on TCP and UDP.
post_add_boost_test(test_message_scheduler
  SOURCES unit/test_message_scheduler.cpp ${PROJECT_SOURCE_DIR}/framework/src/kernel/message_scheduler.cpp
  LIBRARIES PostSockets::kernel LABELS unit)
target_include_directories(test_message_scheduler PRIVATE ${PROJECT_SOURCE_DIR}/framework/src/kernel)

# The post-frame codec builds the frames of a hand-made peer.
get_filename_component(_post_framing_src ${CMAKE_CURRENT_LIST_DIR}/../plugins/framing ABSOLUTE)
post_add_boost_test(test_message_properties SOURCES integration/test_message_properties.cpp
    ${_post_framing_src}/post_frame_codec.cpp
  LIBRARIES PostSockets::kernel LABELS integration TIMEOUT 120)
target_include_directories(test_message_properties PRIVATE ${_post_framing_src})
target_compile_definitions(test_message_properties PRIVATE
  POST_PLUGIN_DIR="${POST_PLUGIN_OUTPUT_DIR}")
foreach(p tcp udp framing)
  if(TARGET post_plugin_${p})
    add_dependencies(test_message_properties post_plugin_${p})
  endif()
endforeach()

# Carrier kinds (source, sink, responder), fork() and dormant carriers.
post_add_boost_test(test_carrier_kinds SOURCES integration/test_carrier_kinds.cpp
  LIBRARIES PostSockets::kernel LABELS integration TIMEOUT 120)
target_compile_definitions(test_carrier_kinds PRIVATE POST_PLUGIN_DIR="${POST_PLUGIN_OUTPUT_DIR}")
foreach(p tcp udp framing)
  if(TARGET post_plugin_${p})
    add_dependencies(test_carrier_kinds post_plugin_${p})
  endif()
endforeach()

# Early data: idempotent messages before the stack is ready (TCP Fast Open; TLS 0-RTT in tls).
post_add_boost_test(test_early_data SOURCES integration/test_early_data.cpp support/test_pki.cpp
  LIBRARIES PostSockets::kernel OpenSSL::Crypto LABELS integration TIMEOUT 60)
target_compile_definitions(test_early_data PRIVATE POST_PLUGIN_DIR="${POST_PLUGIN_OUTPUT_DIR}")
foreach(p tcp framing tls)
  if(TARGET post_plugin_${p})
    add_dependencies(test_early_data post_plugin_${p})
  endif()
endforeach()
