# post_add_plugin(<name> SOURCES ... [LIBRARIES ...])
# Builds one plugin shared object into build/lib/post/plugins/ and installs it next to the
# other plugins. A plugin links only the SDK (headers), never the kernel library.
function(post_add_plugin name)
  cmake_parse_arguments(ARG "" "" "SOURCES;LIBRARIES" ${ARGN})
  set(target post_plugin_${name})
  add_library(${target} MODULE ${ARG_SOURCES})
  target_link_libraries(${target} PRIVATE PostSockets::sdk ${ARG_LIBRARIES})
  set_target_properties(${target} PROPERTIES
    OUTPUT_NAME post-${name} PREFIX "lib"
    LIBRARY_OUTPUT_DIRECTORY ${POST_PLUGIN_OUTPUT_DIR}
    CXX_VISIBILITY_PRESET hidden VISIBILITY_INLINES_HIDDEN ON)
  install(TARGETS ${target} LIBRARY DESTINATION ${POST_PLUGIN_INSTALL_DIR})
  # The same sources as a static library, for tests that skip dlopen.
  add_library(${target}_static STATIC EXCLUDE_FROM_ALL ${ARG_SOURCES})
  target_compile_definitions(${target}_static PUBLIC POST_PLUGIN_STATIC)
  target_link_libraries(${target}_static PUBLIC PostSockets::sdk ${ARG_LIBRARIES})
endfunction()
