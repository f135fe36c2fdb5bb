# The SDK as a third party sees it: install this build tree to a temporary prefix, build the
# example plugin (docs/examples/checksum-plugin) and a small application against the installed
# CMake package and pkg-config files, then load the plugin with the installed `post` tool and
# carry a message through [checksum, framer, tcp] on loopback.
# Needs the whole tree built (it runs `cmake --install`), so it carries the label `sdk`.
set(_post_sdk_cxxflags "")
if(POST_SANITIZE)
  # The example plugin is loaded into a sanitized `post`: build it the same way.
  set(_post_sdk_cxxflags
    "-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined")
endif()
add_test(NAME sdk_out_of_tree
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/sdk/out_of_tree.sh
    --source-dir ${PROJECT_SOURCE_DIR}
    --build-dir ${PROJECT_BINARY_DIR}
    --cxx ${CMAKE_CXX_COMPILER}
    --launcher "${CMAKE_CXX_COMPILER_LAUNCHER}"
    --cxxflags "${_post_sdk_cxxflags}"
    --build-type "${CMAKE_BUILD_TYPE}"
    --libdir ${CMAKE_INSTALL_LIBDIR}
    --bindir ${CMAKE_INSTALL_BINDIR})
set_tests_properties(sdk_out_of_tree PROPERTIES TIMEOUT 300 LABELS "sdk"
  # Two configure+build runs of small projects: keep other tests from starving it.
  PROCESSORS 2)

# The example plugin's logic, linked statically (POST_PLUGIN_STATIC) against the SDK alone.
post_add_boost_test(sdk_checksum_layer_test
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/sdk/checksum_layer_test.cpp
          ${PROJECT_SOURCE_DIR}/docs/examples/checksum-plugin/checksum.cpp
  LIBRARIES PostSockets::sdk
  LABELS sdk)
target_compile_definitions(sdk_checksum_layer_test PRIVATE POST_PLUGIN_STATIC)
