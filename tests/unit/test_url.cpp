#define BOOST_TEST_MODULE url
#include <boost/test/unit_test.hpp>

#include <post/remote.hpp>

using post::url;

BOOST_AUTO_TEST_CASE(scheme_host_port_path) {
    auto u = url::parse("TCP://Example.org:9000/a/b");
    BOOST_REQUIRE(u);
    BOOST_TEST(u->scheme == "tcp");
    BOOST_TEST(u->host == "Example.org");
    BOOST_TEST(u->port == 9000);
    BOOST_TEST(u->path == "/a/b");
    BOOST_TEST(u->to_string() == "tcp://Example.org:9000/a/b");
}

BOOST_AUTO_TEST_CASE(ipv6_literals_need_brackets) {
    auto u = url::parse("udp://[::1]:5353");
    BOOST_REQUIRE(u);
    BOOST_TEST(u->host == "::1");
    BOOST_TEST(u->to_string() == "udp://[::1]:5353");
    std::string why;
    BOOST_TEST(!url::parse("::1:80", &why));
    BOOST_TEST(why.find("brackets") != std::string::npos);
    BOOST_TEST(!url::parse("[::1:80", &why));
    BOOST_TEST(why.find("']'") != std::string::npos);
    BOOST_TEST(!url::parse("[not-v6]:80", &why));
}

BOOST_AUTO_TEST_CASE(host_port_without_scheme) {
    auto u = url::parse("localhost:80");
    BOOST_REQUIRE(u);
    BOOST_TEST(u->scheme.empty());
    BOOST_TEST(u->port == 80);
}

BOOST_AUTO_TEST_CASE(default_ports) {
    BOOST_TEST(url::parse("https://example.org")->port == 443);
    BOOST_TEST(url::parse("sctp://example.org")->port == 9899);
    std::string why;
    BOOST_TEST(!url::parse("tcp://example.org", &why));
    BOOST_TEST(why.find("no default port") != std::string::npos);
    BOOST_TEST(!url::parse("example.org", &why));
    BOOST_TEST(why.find("missing port") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(bad_ports_and_hosts) {
    std::string why;
    for (const char* bad : {"h:0", "h:65536", "h:12a", "h:", "h:999999", "a b:80", "u@h:80",
                            "1tcp://h:80", "://h:80", ""}) {
        BOOST_TEST_CONTEXT(bad) {
            BOOST_TEST(!url::parse(bad, &why));
        }
        BOOST_TEST(!why.empty());
    }
    BOOST_TEST(!url::parse(std::string(3000, 'a') + ":80", &why));
}

BOOST_AUTO_TEST_CASE(remote_from_url) {
    auto r = post::remote::from_url("tcp://127.0.0.1:7");
    BOOST_TEST(r.is_literal());
    BOOST_TEST(r.key() == "127.0.0.1:7");
    BOOST_TEST(!post::remote::from_url("tcp://localhost:7").is_literal());
    BOOST_CHECK_THROW(post::remote::from_url("tcp://:7"), std::invalid_argument);
    BOOST_TEST(post::remote::from_host_port("LocalHost", 80).key() == "localhost:80");
}

BOOST_AUTO_TEST_CASE(local_addresses) {
    auto l = post::local::parse("[::1]:9000");
    BOOST_REQUIRE(l.address);
    BOOST_TEST(l.address->is_v6());
    BOOST_TEST(l.port == 9000);
    BOOST_TEST(!post::local::parse(":0").address);
    BOOST_TEST(post::local::parse("8080").port == 8080);
    BOOST_TEST(post::local::parse("127.0.0.1:1").address->is_v4());
    BOOST_CHECK_THROW(post::local::parse("x.example:80"), std::invalid_argument);
    BOOST_CHECK_THROW(post::local::parse("127.0.0.1:99999"), std::invalid_argument);
}
