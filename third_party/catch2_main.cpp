// Catch2's main(), compiled once and linked into every test binary.
//
// `bazel test --test_filter=SPEC` sets TESTBRIDGE_TEST_ONLY; Catch2 2.13 does
// not read it, so it is passed on here as a test spec ("[channel]", a name, ...).
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <cstdlib>
#include <vector>

int main(int argc, char* argv[]) {
    std::vector<char*> args(argv, argv + argc);
    if (const char* only = std::getenv("TESTBRIDGE_TEST_ONLY"); only && *only)
        args.push_back(const_cast<char*>(only));
    return Catch::Session().run(static_cast<int>(args.size()), args.data());
}
