# Gathering locals: interfaces from getifaddrs, their classification (against a fake sysfs
# tree) and the policy's interface rules; as root, real dummy and tun interfaces in a private
# network namespace.
post_add_boost_test(test_interfaces SOURCES unit/test_interfaces.cpp
  ${PROJECT_SOURCE_DIR}/framework/src/kernel/interface_cache.cpp
  LIBRARIES PostSockets::kernel)
target_include_directories(test_interfaces PRIVATE ${PROJECT_SOURCE_DIR}/framework/src/kernel)
