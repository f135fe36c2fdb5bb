// `post connect --stream` and `post listen --stream`: netcat over a morphed carrier. Bytes, not
// lines: stdin is copied to the stream and the stream to stdout, so the peer can be any plain
// TCP program (socat, nc) or another `post ... --stream`.
#pragma once

#include "common.hpp"

#include <string>

namespace post_tool {

/// Connect a stream carrier to `url` (policy from `policy_file`, or the default) and copy
/// stdin to it and it to stdout until both directions end: at the end of stdin our side
/// closes (after every byte was sent) and the command waits for the peer to close; when the
/// peer closes first, the command ends once everything received was written. Exit 0 on a clean
/// end, 1 with a message on stderr otherwise (connection refused, reset, bad URL or policy).
int run_stream_connect(const global_options& g, const std::string& url,
                       const std::string& policy_file);

/// Listen on `url` for one stream carrier, then copy both ways as run_stream_connect does.
/// Prints "post: listening on ADDRESS:PORT (stacks: ...)" on stderr once it listens.
int run_stream_listen(const global_options& g, const std::string& url,
                      const std::string& policy_file);

} // namespace post_tool
