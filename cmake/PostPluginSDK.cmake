# post_add_plugin: build a Post Sockets plugin out of tree (installed with the PostSockets
# package; the in-tree plugins use cmake/PostPlugin.cmake instead).
#
#   post_add_plugin(<name> SOURCES <src>...
#                   [LIBRARIES <lib>...]          linked privately
#                   [DESTINATION <dir>]           install folder (default: lib/post/plugins under
#                                                 CMAKE_INSTALL_PREFIX)
#                   [OUTPUT_DIRECTORY <dir>]      build folder of the .so
#                   [NO_INSTALL]                  no install rule
#                   [STATIC])                     also <target>_static, a static library built
#                                                 with POST_PLUGIN_STATIC, for tests without dlopen
#
# Defines the target post_plugin_<name>: a MODULE named libpost-<name>.so, compiled as C++20
# with hidden visibility, so the only exported symbol is the POST_PLUGIN descriptor alias.
# Plugins link the SDK only, never the kernel library: the kernel that loads them provides it.
include_guard(GLOBAL)
include(GNUInstallDirs)

function(post_add_plugin name)
  cmake_parse_arguments(ARG "NO_INSTALL;STATIC" "DESTINATION;OUTPUT_DIRECTORY"
                        "SOURCES;LIBRARIES" ${ARGN})
  if(ARG_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "post_add_plugin(${name}): unknown arguments: ${ARG_UNPARSED_ARGUMENTS}")
  endif()
  if(NOT name MATCHES "^[a-z0-9][a-z0-9_-]*$")
    message(FATAL_ERROR "post_add_plugin: plugin name '${name}' must match [a-z0-9][a-z0-9_-]*")
  endif()
  if(NOT ARG_SOURCES)
    message(FATAL_ERROR "post_add_plugin(${name}): SOURCES is required")
  endif()
  if(NOT TARGET PostSockets::sdk)
    message(FATAL_ERROR "post_add_plugin(${name}): call find_package(PostSockets) first")
  endif()

  set(target post_plugin_${name})
  add_library(${target} MODULE ${ARG_SOURCES})
  target_link_libraries(${target} PRIVATE PostSockets::sdk ${ARG_LIBRARIES})
  target_compile_features(${target} PRIVATE cxx_std_20)
  set_target_properties(${target} PROPERTIES
    PREFIX "lib" OUTPUT_NAME "post-${name}" SUFFIX ".so"
    CXX_VISIBILITY_PRESET hidden VISIBILITY_INLINES_HIDDEN ON
    POSITION_INDEPENDENT_CODE ON)
  if(ARG_OUTPUT_DIRECTORY)
    set_target_properties(${target} PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${ARG_OUTPUT_DIRECTORY})
  endif()

  if(NOT ARG_NO_INSTALL)
    if(NOT ARG_DESTINATION)
      set(ARG_DESTINATION ${CMAKE_INSTALL_LIBDIR}/post/plugins)
    endif()
    install(TARGETS ${target} LIBRARY DESTINATION ${ARG_DESTINATION})
  endif()

  if(ARG_STATIC)
    add_library(${target}_static STATIC ${ARG_SOURCES})
    target_compile_definitions(${target}_static PUBLIC POST_PLUGIN_STATIC)
    target_compile_features(${target}_static PUBLIC cxx_std_20)
    target_link_libraries(${target}_static PUBLIC PostSockets::sdk ${ARG_LIBRARIES})
  endif()
endfunction()
