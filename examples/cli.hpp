#pragma once
// examples/cli.hpp: the small command-line parser the examples share, with --help.
//
// A flag is `--name value` (or `--name=value`), a toggle is a bare `--name`, and positional
// arguments come in order. Each is declared with the variable it fills; its value at that
// moment is the default shown in the usage line. parse() prints the usage to stdout and exits 0
// on --help; on a bad argument it prints one line saying what is wrong, then the usage, to
// stderr and exits 2. Not part of coronet: examples only.
// Medusa ancestor: the sys.argv handling at the bottom of each Medusa script.

#include <algorithm>
#include <charconv>
#include <concepts>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace cli {

class parser {
public:
    // program: the name in messages; summary: one line under the usage in --help.
    parser(std::string program, std::string summary)
        : program_(std::move(program)), summary_(std::move(summary)) {}

    // --name TEXT (or what `shown` says the value is: FILE, HOST:PORT...).
    void flag(std::string name, std::string& into, std::string help, std::string shown = "TEXT") {
        add({.name = "--" + name,
             .shown = into.empty() ? std::move(shown) : into,
             .help = std::move(help),
             .set = [&into](std::string_view v) {
                 into = v;
                 return std::string();
             }});
    }

    // --name N, an integer from min to max.
    template <std::integral Int>
    void flag(std::string name, Int& into, Int min, Int max, std::string help) {
        add({.name = "--" + name,
             .shown = std::to_string(into),
             .help = std::move(help),
             .set = [&into, min, max](std::string_view v) {
                 Int n{};
                 auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
                 if (ec != std::errc() || end != v.data() + v.size() || n < min || n > max)
                     return "expected an integer from " + std::to_string(min) + " to " +
                            std::to_string(max) + ", got '" + std::string(v) + "'";
                 into = n;
                 return std::string();
             }});
    }

    // --name WORD, one of choices.
    void choice(std::string name, std::string& into, std::vector<std::string> choices,
                std::string help) {
        std::string all;
        for (const auto& c : choices)
            all += (all.empty() ? "" : "|") + c;
        add({.name = "--" + name,
             .shown = all,
             .help = std::move(help),
             .set = [&into, choices, all](std::string_view v) {
                 for (const auto& c : choices) {
                     if (v != c) continue;
                     into = c;
                     return std::string();
                 }
                 return "expected one of " + all + ", got '" + std::string(v) + "'";
             }});
    }

    // --name with no value: sets into to true.
    void toggle(std::string name, bool& into, std::string help) {
        add({.name = "--" + name,
             .shown = "",
             .help = std::move(help),
             .set =
                 [&into](std::string_view) {
                     into = true;
                     return std::string();
                 },
             .takes_value = false});
    }

    // A required positional argument, shown as <name>.
    void positional(std::string name, std::string& into, std::string help) {
        add({.name = "<" + name + ">",
             .shown = "",
             .help = std::move(help),
             .set =
                 [&into](std::string_view v) {
                     into = v;
                     return std::string();
                 },
             .positional = true});
    }

    // One or more positional arguments, shown as <name>...; declare it after the other positionals.
    void positionals(std::string name, std::vector<std::string>& into, std::string help) {
        add({.name = "<" + name + ">...",
             .shown = "",
             .help = std::move(help),
             .set =
                 [&into](std::string_view v) {
                     into.emplace_back(v);
                     return std::string();
                 },
             .positional = true,
             .repeats = true});
    }

    // Fills the variables from argv, or exits (0 after --help, 2 on a bad argument).
    void parse(int argc, char** argv) {
        std::size_t next_positional = 0;
        for (int i = 1; i < argc; ++i) {
            std::string_view arg = argv[i];
            if (arg == "--help" || arg == "-h") {
                std::fputs(usage().c_str(), stdout);
                std::exit(0);
            }
            if (!arg.starts_with("--")) {
                option* o = nth_positional(next_positional++);
                if (!o) fail("unexpected argument '" + std::string(arg) + "'");
                set(*o, arg);
                continue;
            }
            auto eq = arg.find('=');
            std::string_view name = arg.substr(0, eq);
            option* o = find(name);
            if (!o) fail("unknown flag '" + std::string(name) + "'");
            if (!o->takes_value) {
                if (eq != arg.npos) fail(std::string(name) + " takes no value");
                set(*o, "");
            } else if (eq != arg.npos) {
                set(*o, arg.substr(eq + 1));
            } else if (i + 1 < argc) {
                set(*o, argv[++i]);
            } else {
                fail(std::string(name) + " needs a value");
            }
        }
        if (option* o = nth_positional(next_positional); o && !o->given) fail("missing " + o->name);
    }

    // Reports a bad argument found after parse() (a host that does not resolve): exits 2.
    [[noreturn]] void fail(const std::string& message) const {
        std::fprintf(stderr, "%s: %s\n%s", program_.c_str(), message.c_str(), usage().c_str());
        std::exit(2);
    }

    // Turns an argument into what the program needs, after parse() (a host name into an address):
    // what make() throws is reported as a bad `name` argument, which exits 2.
    template <std::invocable Make>
    auto convert(const std::string& name, Make make) const {
        try {
            return make();
        } catch (const std::exception& e) {
            fail(name + ": " + e.what());
        }
    }

    // "usage: prog [--flag default] ... <positional>", the summary, then one line per argument.
    std::string usage() const {
        std::string out = "usage: " + program_;
        for (const auto& o : options_)
            out += o.positional ? " " + o.name
                                : " [" + o.name + (o.shown.empty() ? "" : " " + o.shown) + "]";
        out += "\n" + summary_ + "\n\n";
        std::vector<std::pair<std::string, std::string>> lines;
        for (const auto& o : options_)
            lines.emplace_back(o.name + (o.shown.empty() ? "" : " " + o.shown), o.help);
        lines.emplace_back("--help", "print this and exit");
        std::size_t width = 0;
        for (const auto& [left, help] : lines)
            width = std::max(width, left.size());
        for (const auto& [left, help] : lines)
            out += "  " + left + std::string(width + 2 - left.size(), ' ') + help + "\n";
        return out;
    }

private:
    struct option {
        std::string name;   // "--port", or "<url>" for a positional
        std::string shown;  // the default, or "a|b|c" for a choice
        std::string help;
        std::function<std::string(std::string_view)> set;  // "" when accepted, else what is wrong
        bool takes_value = true;
        bool positional = false;
        bool repeats = false;  // a positional that takes every remaining argument
        bool given = false;    // set at least once
    };

    void add(option o) { options_.push_back(std::move(o)); }

    option* find(std::string_view name) {
        for (auto& o : options_)
            if (!o.positional && o.name == name) return &o;
        return nullptr;
    }

    // The positional that takes the n-th positional argument (a repeating one takes the rest).
    option* nth_positional(std::size_t n) {
        option* last = nullptr;
        for (auto& o : options_) {
            if (!o.positional) continue;
            if (n-- == 0) return &o;
            last = &o;
        }
        return last && last->repeats ? last : nullptr;
    }

    void set(option& o, std::string_view value) {
        if (std::string error = o.set(value); !error.empty()) fail(o.name + ": " + error);
        o.given = true;
    }

    std::string program_;
    std::string summary_;
    std::vector<option> options_;
};

}  // namespace cli
