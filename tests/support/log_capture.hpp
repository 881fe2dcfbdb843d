#pragma once
// Test support: capture coronet's log lines (lib/log.hpp's sink) for a scope.
//
// log_capture cap{log_level::debug}; ... cap.count(log_level::info, "timed out")
// Lines at `level` and above are kept with their level; the previous level and
// sink come back when the capture ends.

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <coronet/lib/log.hpp>

namespace coronet::testing {

class log_capture {
public:
    struct line {
        log_level level;
        std::string text;
    };

    explicit log_capture(log_level level = log_level::debug)
        : saved_level_(current_log_level()),
          saved_sink_(set_log_sink([this](log_level l, std::string_view m) {
              lines_.push_back({l, std::string(m)});
          })) {
        set_log_level(level);
    }
    ~log_capture() {
        set_log_sink(std::move(saved_sink_));
        set_log_level(saved_level_);
    }
    log_capture(const log_capture&) = delete;
    log_capture& operator=(const log_capture&) = delete;

    const std::vector<line>& lines() const noexcept { return lines_; }
    // Lines at exactly `level` that contain `part`.
    std::size_t count(log_level level, std::string_view part) const {
        std::size_t n = 0;
        for (const auto& l : lines_)
            if (l.level == level && l.text.find(part) != std::string::npos) ++n;
        return n;
    }
    // Lines at any level that contain `part`.
    std::size_t count(std::string_view part) const {
        std::size_t n = 0;
        for (const auto& l : lines_)
            if (l.text.find(part) != std::string::npos) ++n;
        return n;
    }
    // Every line, one per row with its level, for failure messages.
    std::string dump() const {
        static constexpr const char* names[] = {"debug", "info", "warning", "error", "off"};
        std::string out;
        for (const auto& l : lines_)
            ((out += names[static_cast<int>(l.level)]) += ": ") += l.text + "\n";
        return out;
    }

private:
    std::vector<line> lines_;
    log_level saved_level_;
    log_sink saved_sink_;
};

}  // namespace coronet::testing
