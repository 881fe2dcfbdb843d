#include <coronet/lib/log.hpp>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>

namespace coronet {
namespace {

log_level from_env() noexcept {
    const char* v = std::getenv("CORONET_LOG");
    if (!v) return log_level::warning;
    if (!std::strcmp(v, "debug")) return log_level::debug;
    if (!std::strcmp(v, "info")) return log_level::info;
    if (!std::strcmp(v, "error")) return log_level::error;
    if (!std::strcmp(v, "off")) return log_level::off;
    return log_level::warning;
}

std::atomic<log_level>& level_ref() noexcept {
    static std::atomic<log_level> level{from_env()};
    return level;
}

log_sink& sink_ref() {
    static log_sink sink;
    return sink;
}

}  // namespace

log_sink set_log_sink(log_sink sink) { return std::exchange(sink_ref(), std::move(sink)); }

log_level current_log_level() noexcept { return level_ref().load(std::memory_order_relaxed); }

void set_log_level(log_level level) noexcept {
    level_ref().store(level, std::memory_order_relaxed);
}

void log(log_level level, std::string_view message) {
    if (!log_enabled(level)) return;
    if (const log_sink& sink = sink_ref()) return sink(level, message);
    std::string line = "log: ";
    if (level == log_level::warning) line += "warning: ";
    if (level == log_level::error) line += "error: ";
    line.append(message);
    line += '\n';
    std::fwrite(line.data(), 1, line.size(), stderr);  // one write: lines never interleave
}

}  // namespace coronet
