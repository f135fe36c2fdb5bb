# Gathering locals: interfaces from getifaddrs, their classification (against a fake sysfs
# tree) and the policy's interface rules; as root, real dummy and tun interfaces in a private
# network namespace.
post_add_boost_test(test_interfaces SOURCES unit/test_interfaces.cpp
  LIBRARIES PostSockets::kernel)
