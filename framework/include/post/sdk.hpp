// Everything a plugin author includes.
#pragma once

#include <post/sdk/abi.hpp>
#include <post/sdk/asio.hpp>
#include <post/sdk/edge.hpp>
#include <post/sdk/features.hpp>
#include <post/sdk/flow.hpp>
#include <post/sdk/flow_support.hpp>
#include <post/sdk/layer.hpp>
#include <post/sdk/options.hpp>
#include <post/sdk/session_store.hpp>
