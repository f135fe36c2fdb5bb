# The RFC 8305 resolver against tests/netns/dns_server.py, in private network and mount
# namespaces (root; skipped otherwise). resolver.cpp is compiled in, so the test needs only it.
post_add_boost_test(test_resolver SOURCES integration/test_resolver.cpp
  ${PROJECT_SOURCE_DIR}/framework/src/kernel/resolver.cpp
  LIBRARIES PostSockets::sdk LABELS netns TIMEOUT 60)
target_include_directories(test_resolver PRIVATE ${PROJECT_SOURCE_DIR}/framework/src/kernel)
