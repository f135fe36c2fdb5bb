post_add_fuzzer(fuzz_url SOURCES fuzz_url.cpp ${PROJECT_SOURCE_DIR}/framework/src/kernel/remote.cpp
  LIBRARIES PostSockets::sdk)
post_add_fuzzer(fuzz_descriptor SOURCES fuzz_descriptor.cpp
  ${PROJECT_SOURCE_DIR}/framework/src/kernel/plugin_registry.cpp
  ${PROJECT_SOURCE_DIR}/framework/src/kernel/elf_check.cpp
  LIBRARIES PostSockets::sdk ${CMAKE_DL_LIBS})
post_add_fuzzer(fuzz_elf_check SOURCES fuzz_elf_check.cpp
  ${PROJECT_SOURCE_DIR}/framework/src/kernel/elf_check.cpp LIBRARIES PostSockets::sdk)
target_include_directories(fuzz_elf_check PRIVATE ${PROJECT_SOURCE_DIR}/framework/src/kernel)
target_include_directories(fuzz_descriptor PRIVATE ${PROJECT_SOURCE_DIR}/framework/src/kernel)
# The typed-message codecs (header-only).
post_add_fuzzer(fuzz_codecs SOURCES fuzz_codecs.cpp LIBRARIES PostSockets::sdk)
target_include_directories(fuzz_codecs PRIVATE ${PROJECT_SOURCE_DIR}/framework/include)
target_link_libraries(fuzz_codecs PRIVATE nlohmann_json::nlohmann_json)
# The persisted association file (docs/associations.md).
post_add_fuzzer(fuzz_association_file SOURCES fuzz_association_file.cpp
  ${PROJECT_SOURCE_DIR}/framework/src/kernel/association_file.cpp
  ${PROJECT_SOURCE_DIR}/framework/src/kernel/association.cpp
  LIBRARIES PostSockets::sdk)
target_include_directories(fuzz_association_file PRIVATE ${PROJECT_SOURCE_DIR}/framework/src/kernel
  ${PROJECT_SOURCE_DIR}/framework/include)
target_link_libraries(fuzz_association_file PRIVATE nlohmann_json::nlohmann_json)
