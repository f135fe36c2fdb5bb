# Tests of the http plugin (layer `http1`, docs/http.md): the decoder and encoder alone, and
# requests and responses through the kernel over [http1, tcp] and [http1, tls, tcp] on loopback
# (the plugins are loaded from this build). Only when the plugin is built (http-parser found).
if(TARGET post_plugin_http)
  get_filename_component(POST_HTTP_SRC ${CMAKE_CURRENT_LIST_DIR}/../plugins/http ABSOLUTE)
  post_add_boost_test(test_http1
    SOURCES ${CMAKE_CURRENT_LIST_DIR}/integration/test_http1.cpp
            ${CMAKE_CURRENT_LIST_DIR}/support/test_pki.cpp
            ${POST_HTTP_SRC}/http1_decoder.cpp ${POST_HTTP_SRC}/http1_encoder.cpp
    LIBRARIES PostSockets::kernel OpenSSL::Crypto post_http_parser
    LABELS integration plugins http
    TIMEOUT 60)
  target_include_directories(test_http1 PRIVATE ${POST_HTTP_SRC})
  target_compile_definitions(test_http1 PRIVATE POST_PLUGIN_DIR="${POST_PLUGIN_OUTPUT_DIR}")
  foreach(p tcp tls http)
    if(TARGET post_plugin_${p})
      add_dependencies(test_http1 post_plugin_${p})
    endif()
  endforeach()
endif()
