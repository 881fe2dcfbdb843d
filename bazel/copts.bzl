"""Compiler flags for coronet's own code, in one place (abseil's copts.bzl)."""

CORONET_COPTS = [
    "-std=c++20",
    "-Wall",
    "-Wextra",
    "-Werror",
    "-Wno-unused-parameter",
]

# Tests: Catch2 2.13 macros trip -Wextra in a few places; keep -Werror for the rest.
CORONET_TEST_COPTS = CORONET_COPTS + [
    "-Wno-parentheses",
]
