# Fuzzer for the http1 layer's decoder (and its encoder on what the decoder accepts): requests
# and responses, whole and in pieces, with and without the end of the stream. Built only when
# http-parser is found (the http plugin's CMakeLists defines post_http_parser).
if(TARGET post_http_parser)
  post_add_fuzzer(fuzz_http1
    SOURCES ${CMAKE_CURRENT_LIST_DIR}/fuzz_http1.cpp
            ${PROJECT_SOURCE_DIR}/plugins/http/http1_decoder.cpp
            ${PROJECT_SOURCE_DIR}/plugins/http/http1_encoder.cpp
    LIBRARIES PostSockets::sdk post_http_parser)
  target_include_directories(fuzz_http1 PRIVATE ${PROJECT_SOURCE_DIR}/plugins/http)
endif()
