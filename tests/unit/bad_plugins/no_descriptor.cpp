// A perfectly good shared object that is not a Post Sockets plugin.
extern "C" __attribute__((visibility("default"))) int not_a_plugin() {
    return 42;
}
