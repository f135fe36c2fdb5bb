# Install rules and the packages third parties build against:
#   include/post/...                         public headers (kernel API and plugin SDK)
#   lib/libpostsockets.so*                   the kernel             -> PostSockets::kernel
#   lib/cmake/PostSockets/                   find_package(PostSockets) -> PostSockets::sdk,
#                                            PostSockets::kernel, post_add_plugin()
#   lib/pkgconfig/postsockets{,-sdk}.pc      the same for pkg-config users
#   bin/post                                 the command line tool, finding the kernel via RPATH
# Plugins (PostPlugin.cmake), the host configuration and the policies install themselves.
# Included last from the root CMakeLists.txt, so every target exists here.
include(CMakePackageConfigHelpers)

set(POST_CMAKE_INSTALL_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/PostSockets)
set(POST_PKGCONFIG_INSTALL_DIR ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

install(DIRECTORY ${PROJECT_SOURCE_DIR}/framework/include/
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
        FILES_MATCHING PATTERN "*.hpp")

# The kernel may be left out of special configurations (e.g. a fuzz-only build); the SDK alone
# is still a usable package then.
set(_post_exported postsockets_sdk)
if(TARGET postsockets)
  list(APPEND _post_exported postsockets)
endif()
install(TARGETS ${_post_exported} EXPORT PostSocketsTargets
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT PostSocketsTargets NAMESPACE PostSockets::
        DESTINATION ${POST_CMAKE_INSTALL_DIR} FILE PostSocketsTargets.cmake)

# Where built-in plugins live, relative to the prefix, for post_add_plugin's default and for
# plugin projects that want to install next to them (PostSockets_PLUGIN_DIR).
set(POST_PLUGIN_REL_DIR ${POST_PLUGIN_INSTALL_DIR})
configure_package_config_file(
  ${CMAKE_CURRENT_LIST_DIR}/PostSocketsConfig.cmake.in
  ${PROJECT_BINARY_DIR}/cmake/PostSocketsConfig.cmake
  INSTALL_DESTINATION ${POST_CMAKE_INSTALL_DIR}
  PATH_VARS CMAKE_INSTALL_INCLUDEDIR POST_PLUGIN_REL_DIR)
write_basic_package_version_file(
  ${PROJECT_BINARY_DIR}/cmake/PostSocketsConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMajorVersion)
install(FILES ${PROJECT_BINARY_DIR}/cmake/PostSocketsConfig.cmake
              ${PROJECT_BINARY_DIR}/cmake/PostSocketsConfigVersion.cmake
              ${CMAKE_CURRENT_LIST_DIR}/PostPluginSDK.cmake
        DESTINATION ${POST_CMAKE_INSTALL_DIR})

# pkg-config files. `prefix` is derived from the file's own location (${pcfiledir}) so that
# `cmake --install build --prefix /elsewhere` yields working files too.
function(post_write_pkgconfig name description libs requires)
  set(_libdir_abs /prefix/${POST_PKGCONFIG_INSTALL_DIR})
  if(IS_ABSOLUTE ${POST_PKGCONFIG_INSTALL_DIR})
    set(_libdir_abs ${POST_PKGCONFIG_INSTALL_DIR})
  endif()
  file(RELATIVE_PATH _up ${_libdir_abs} /prefix)
  string(REGEX REPLACE "/$" "" _up "${_up}")
  set(POST_PC_PREFIX "\${pcfiledir}/${_up}")
  foreach(dir INCLUDEDIR LIBDIR)
    if(IS_ABSOLUTE ${CMAKE_INSTALL_${dir}})
      set(POST_PC_${dir} ${CMAKE_INSTALL_${dir}})
    else()
      set(POST_PC_${dir} "\${prefix}/${CMAKE_INSTALL_${dir}}")
    endif()
  endforeach()
  set(POST_PC_NAME ${name})
  set(POST_PC_DESCRIPTION ${description})
  set(POST_PC_LIBS ${libs})
  set(POST_PC_REQUIRES ${requires})
  configure_file(${CMAKE_CURRENT_FUNCTION_LIST_DIR}/postsockets.pc.in
                 ${PROJECT_BINARY_DIR}/pkgconfig/${name}.pc @ONLY)
  install(FILES ${PROJECT_BINARY_DIR}/pkgconfig/${name}.pc
          DESTINATION ${POST_PKGCONFIG_INSTALL_DIR})
endfunction()

post_write_pkgconfig(postsockets-sdk
  "Post Sockets plugin SDK (headers only; C++20, Boost 1.74 headers)" "" "")
if(TARGET postsockets)
  post_write_pkgconfig(postsockets "Post Sockets kernel library: message transport API"
    "-L\${libdir} -lpostsockets -lboost_filesystem -pthread" "postsockets-sdk")
endif()

# The command line tool (defined in tools/ when it is built). Its RPATH finds the kernel in the
# installed lib folder wherever the prefix is moved; the build tree keeps CMake's build RPATH.
if(TARGET post)
  file(RELATIVE_PATH _post_bin_to_lib /prefix/${CMAKE_INSTALL_BINDIR}
       /prefix/${CMAKE_INSTALL_LIBDIR})
  set_target_properties(post PROPERTIES INSTALL_RPATH "$ORIGIN/${_post_bin_to_lib}")
  install(TARGETS post RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
endif()
