#pragma once
// Test support: run one test body on every backend, and print error codes by name.
//
// CORONET_FOR_EACH_BACKEND(kind) declares `kind` (a coronet::backend_kind) as a
// Catch2 generator over io_uring, epoll and select; the failing backend is named
// in every failure message. A backend this machine lacks FAILS the test, unless
// the environment allows it to be missing:
//   CORONET_TEST_ALLOW_MISSING_BACKENDS=io_uring        (a comma-separated list, or "all")
// then it is reported with a warning and skipped (Catch2 2.13 has no SKIP), so
// a machine without io_uring cannot pass the suite by testing less unnoticed.

#include <catch2/catch.hpp>

#include <cstdlib>
#include <string>
#include <string_view>
#include <system_error>

#include <coronet/lib/error.hpp>
#include <coronet/lib/reactor.hpp>

#define CORONET_FOR_EACH_BACKEND(kind)                                                            \
    const auto kind = GENERATE(::coronet::backend_kind::io_uring, ::coronet::backend_kind::epoll, \
                               ::coronet::backend_kind::select);                                  \
    INFO("backend: " << ::coronet::to_string(kind));                                              \
    if (!::coronet::testing::backend_or_allowed_skip(kind)) return;

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

// True when CORONET_TEST_ALLOW_MISSING_BACKENDS names `kind` (or says "all").
inline bool missing_backend_allowed(backend_kind kind) {
    const char* v = std::getenv("CORONET_TEST_ALLOW_MISSING_BACKENDS");
    if (!v) return false;
    std::string_view list(v), name = to_string(kind);
    while (!list.empty()) {
        auto comma = list.find(',');
        auto item = list.substr(0, comma);
        while (!item.empty() && item.front() == ' ')
            item.remove_prefix(1);
        while (!item.empty() && item.back() == ' ')
            item.remove_suffix(1);
        if (item == name || item == "all") return true;
        if (comma == std::string_view::npos) break;
        list.remove_prefix(comma + 1);
    }
    return false;
}

// True when `kind` can be tested here. A missing backend fails the test
// (FAIL) unless CORONET_TEST_ALLOW_MISSING_BACKENDS allows it: then a warning
// and false (skip).
inline bool backend_or_allowed_skip(backend_kind kind) {
    if (backend_available(kind)) return true;
    if (missing_backend_allowed(kind)) {
        WARN(to_string(kind) << " unavailable here, skipped (CORONET_TEST_ALLOW_MISSING_BACKENDS)");
        return false;
    }
    FAIL(to_string(kind) << " unavailable here: every backend must be tested; set "
                         << "CORONET_TEST_ALLOW_MISSING_BACKENDS=" << to_string(kind)
                         << " to skip it knowingly");
    return false;
}

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
