#include "tests/support/proc_stats.hpp"

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include <unistd.h>

namespace coronet::testing {

std::chrono::duration<double> cpu_time(pid_t pid) {
    const std::string path = "/proc/" + std::to_string(pid) + "/stat";
    std::ifstream f(path);
    std::string stat((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    if (stat.empty()) throw std::runtime_error("cpu_time: cannot read " + path);
    // Fields after the ")" that ends the command name: state is 3rd, utime 14th, stime 15th.
    std::string rest = stat.substr(stat.rfind(')') + 2);
    std::vector<std::string> fields;
    for (std::size_t at = 0; at < rest.size();) {
        std::size_t end = rest.find(' ', at);
        fields.push_back(rest.substr(at, end - at));
        at = end == std::string::npos ? rest.size() : end + 1;
    }
    if (fields.size() <= 12) throw std::runtime_error("cpu_time: short " + path + ": " + stat);
    double ticks = std::stod(fields[11]) + std::stod(fields[12]);
    return std::chrono::duration<double>(ticks / double(::sysconf(_SC_CLK_TCK)));
}

std::size_t rss_kib(pid_t pid) {
    const std::string path = "/proc/" + std::to_string(pid) + "/status";
    std::ifstream f(path);
    for (std::string line; std::getline(f, line);)
        if (line.starts_with("VmRSS:")) return std::stoul(line.substr(6));
    throw std::runtime_error("rss_kib: no VmRSS in " + path);
}

std::size_t open_fd_count(pid_t pid) {
    auto dir = std::filesystem::path("/proc") / std::to_string(pid) / "fd";
    return std::size_t(std::distance(std::filesystem::directory_iterator(dir), {}));
}

rlim_t raise_open_files(rlim_t n) {
    rlimit limit{};
    if (::getrlimit(RLIMIT_NOFILE, &limit) != 0)
        throw std::system_error(errno, std::generic_category(), "getrlimit(RLIMIT_NOFILE)");
    if (limit.rlim_cur < n) {
        limit.rlim_cur = std::min(n, limit.rlim_max);
        if (::setrlimit(RLIMIT_NOFILE, &limit) != 0)
            throw std::system_error(errno, std::generic_category(), "setrlimit(RLIMIT_NOFILE)");
    }
    return limit.rlim_cur;
}

}  // namespace coronet::testing
