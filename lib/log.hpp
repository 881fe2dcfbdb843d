#pragma once
// Logging, asyncore's log()/log_info(): one line per event on stderr.
//
// The level comes from CORONET_LOG=debug|info|warning|error|off (default
// warning) or set_log_level(). Debug lines keep Medusa's wording: `adding
// channel <...>`, `closing channel 4:<...>`, `unhandled close event`.

#include <functional>
#include <string_view>

namespace coronet {

// Severity of a log line; a line is printed when its level >= the current one.
enum class log_level { debug, info, warning, error, off };

// The current level (initialised from CORONET_LOG on first use).
log_level current_log_level() noexcept;

// Changes the level for the whole process.
void set_log_level(log_level level) noexcept;

// True when a line at `level` would be printed; test before formatting.
inline bool log_enabled(log_level level) noexcept { return level >= current_log_level(); }

// Prints `log: <message>` (with the level for warnings and errors) to stderr.
void log(log_level level, std::string_view message);

// Where log() lines go instead of stderr (tests capture them); an empty sink
// means stderr again. The level filter applies first. Returns the previous sink.
using log_sink = std::function<void(log_level, std::string_view)>;
log_sink set_log_sink(log_sink sink);

}  // namespace coronet
