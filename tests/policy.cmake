# Policy engine tests: parsing, merging, selection, shipped policies, host configuration.
post_add_boost_test(test_policy
  SOURCES unit/test_policy_parse.cpp unit/test_policy_engine.cpp unit/test_policy_shipped.cpp
          unit/test_policy_catalog.cpp
  LIBRARIES postsockets_policy
  LABELS policy)
# The shipped-policy test also checks the copies in build/share/post/policies.
add_dependencies(test_policy post_policies)

post_add_boost_test(test_config
  SOURCES unit/test_config.cpp
  LIBRARIES postsockets_policy
  LABELS policy)
