// Turning an Asio completion handler into a type-erased callback that the (non-template)
// kernel can store, while honouring the handler's associated executor.
#pragma once

#include <post/detail/unique_function.hpp>

#include <utility>
// <utility> must precede Asio for coroutine support with g++ 12 (see dependencies notes).
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>

#include <tuple>

namespace post::detail {

/// Wrap `handler` so that calling the result with (args...) invokes the handler on its
/// associated executor (default: `fallback`), keeping that executor busy until then.
template <class... Args, class Handler, class Executor>
unique_function<void(Args...)> erase_handler(Handler handler, const Executor& fallback) {
    auto ex = boost::asio::get_associated_executor(handler, fallback);
    auto work = boost::asio::make_work_guard(ex);
    return [h = std::move(handler), work = std::move(work)](Args... args) mutable {
        auto target = work.get_executor();
        boost::asio::post(target,
                          [h = std::move(h), tup = std::make_tuple(std::move(args)...)]() mutable {
                              std::apply(std::move(h), std::move(tup));
                          });
        work.reset();
    };
}

} // namespace post::detail
