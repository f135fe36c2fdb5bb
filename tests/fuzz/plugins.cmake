# Fuzzers for the plugins' parsers.
post_add_fuzzer(fuzz_frame_decoder
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/fuzz_frame_decoder.cpp
          ${PROJECT_SOURCE_DIR}/plugins/framing/frame_decoder.cpp
  LIBRARIES PostSockets::sdk)
target_include_directories(fuzz_frame_decoder PRIVATE ${PROJECT_SOURCE_DIR}/plugins/framing)

# The quic plugin's stream framing (varint lengths, message reassembly). Built with the plugin:
# only when pkg-config found ngtcp2 (plugins/quic/CMakeLists.txt), though the decoder needs none.
if(TARGET post_plugin_quic)
  post_add_fuzzer(fuzz_quic_framing
    SOURCES ${CMAKE_CURRENT_LIST_DIR}/fuzz_quic_framing.cpp
            ${PROJECT_SOURCE_DIR}/plugins/quic/quic_framing.cpp)
  target_include_directories(fuzz_quic_framing PRIVATE ${PROJECT_SOURCE_DIR}/plugins/quic)
endif()

# The quic plugin's 0-RTT state: the server's NewSessionTicket and the association blob. Needs
# ngtcp2 (transport parameters are decoded when a blob loads).
if(TARGET post_plugin_quic)
  pkg_check_modules(POST_FUZZ_NGTCP2 QUIET IMPORTED_TARGET libngtcp2)
  if(POST_FUZZ_NGTCP2_FOUND)
    post_add_fuzzer(fuzz_quic_session
      SOURCES ${CMAKE_CURRENT_LIST_DIR}/fuzz_quic_session.cpp
              ${PROJECT_SOURCE_DIR}/plugins/quic/quic_session.cpp
      LIBRARIES PostSockets::sdk PkgConfig::POST_FUZZ_NGTCP2)
    target_include_directories(fuzz_quic_session PRIVATE ${PROJECT_SOURCE_DIR}/plugins/quic)
  endif()
endif()
