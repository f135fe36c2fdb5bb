# End-to-end tests of the `post` tool: real processes on loopback (tests/cli/*.sh).
set(POST_CLI_TESTS tcp_exchange echo udp json file count refused local plugins policy demo bench tls_interop bench_tls dtls establishment bench_racing sctp bench_sctp sctp_wire quic_racing quic_migration bench_quic http_get h3_interop)
foreach(test ${POST_CLI_TESTS})
  add_test(NAME cli_${test}
           COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/cli/${test}.sh $<TARGET_FILE:post>)
  set_tests_properties(cli_${test} PROPERTIES
    TIMEOUT 90
    LABELS cli
    ENVIRONMENT "POST_SOURCE_DIR=${PROJECT_SOURCE_DIR};POST_BINARY_DIR=${PROJECT_BINARY_DIR}")
endforeach()
set_tests_properties(cli_bench PROPERTIES TIMEOUT 150)
set_tests_properties(cli_establishment cli_bench_racing PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 120)
# Skipped (77) without tsctp or the sctp plugin, and without root or tshark, respectively.
set_tests_properties(cli_bench_sctp cli_sctp_wire PROPERTIES SKIP_RETURN_CODE 77)
set_tests_properties(cli_sctp_wire PROPERTIES TIMEOUT 150)
# Namespaces and nft: skipped (77) when not root or without the quic plugin.
set_tests_properties(cli_quic_racing cli_quic_migration PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 60)
set_tests_properties(cli_bench_quic PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 120)
# Skipped (77) without nginx or the http plugin.
set_tests_properties(cli_http_get PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 60)
# Skipped (77) without gtlsserver/gtlsclient (Debian ngtcp2-server, ngtcp2-client) or the h3 layer.
set_tests_properties(cli_h3_interop PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 90)
