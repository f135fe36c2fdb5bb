// The whole public API.
#pragma once

#include <post/association.hpp>
#include <post/carrier.hpp>
#include <post/config.hpp>
#include <post/context.hpp>
#include <post/error.hpp>
#include <post/iostream.hpp>
#include <post/listener.hpp>
#include <post/message.hpp>
#include <post/path.hpp>
#include <post/plugin_registry.hpp>
#include <post/policy.hpp>
#include <post/remote.hpp>
#include <post/responder.hpp>
#include <post/sink.hpp>
#include <post/source.hpp>
#include <post/stream.hpp>
#include <post/trace.hpp>
#include <post/transient.hpp>
