#pragma once
// Test support: run one test body on every backend, and print error codes by name.
//
// CORONET_FOR_EACH_BACKEND(kind) declares `kind` (a coronet::backend_kind) as a
// Catch2 generator over io_uring, epoll and select; the failing backend is named
// in every failure message, and a backend this machine lacks is reported with
// a warning and skipped (Catch2 2.13 has no SKIP).

#include <catch2/catch.hpp>

#include <string>
#include <system_error>

#include <coronet/lib/error.hpp>
#include <coronet/lib/reactor.hpp>

#define CORONET_FOR_EACH_BACKEND(kind)                                                            \
    const auto kind = GENERATE(::coronet::backend_kind::io_uring, ::coronet::backend_kind::epoll,  \
                               ::coronet::backend_kind::select);                                   \
    INFO("backend: " << ::coronet::to_string(kind));                                              \
    if (!::coronet::backend_available(kind)) {                                                    \
        WARN(::coronet::to_string(kind) << " unavailable here, skipped");                         \
        return;                                                                                   \
    }

namespace Catch {
template <>
struct StringMaker<std::error_code> {
    static std::string convert(const std::error_code& ec) {
        if (ec.category() == std::system_category() || ec.category() == std::generic_category())
            return ::coronet::errno_name(ec.value()) + " (" + ec.message() + ")";
        return std::string(ec.category().name()) + ":" + std::to_string(ec.value()) + " (" +
               ec.message() + ")";
    }
};
}  // namespace Catch

namespace coronet::testing {

// The error_code a callable throws as std::system_error (a default one if none).
template <class F>
std::error_code error_thrown_by(F&& f) {
    try {
        f();
    } catch (const std::system_error& e) {
        return e.code();
    }
    return {};
}

}  // namespace coronet::testing
