#pragma once
// examples/resp.hpp: the Redis side of examples/kv_server: the keyspace with its command table,
// over coronet's RESP2 codec (proto/resp.hpp).
//
// Nothing here touches a socket: kv_server.cpp reads requests from a coronet::channel and hands
// each one to store::execute(), which appends the reply to a string. That keeps the server page
// about terminator switching, and lets tests/examples/resp_test.cpp drive the commands directly.
// Every value is a string, so Redis's WRONGTYPE never arises. Not part of coronet: examples only.
// Medusa ancestor: the command table of Medusa's ftp_server (cmd_* methods looked up by name).

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <coronet/proto/resp.hpp>

namespace kv {

// The RESP2 codec (protocol_error, limits, the request checks, reply_*) is coronet's
// proto/resp.hpp: kv::reply_bulk is coronet::resp::reply_bulk.
using namespace coronet::resp;

using clock = std::chrono::steady_clock;

// What the connection does after a reply (QUIT closes it).
enum class after_reply { read_next, close };

// Who uses a store: one reactor thread (no locking) or several (a mutex around each command).
enum class sharing { one_thread, many_threads };

// The keyspace: string keys to string values with optional deadlines. An expired key vanishes
// when a command touches it (lazily) or in sweep(), whichever comes first.
class store {
public:
    struct entry {
        std::string value;
        clock::time_point deadline = clock::time_point::max();  // max: no expiry
    };
    using map = std::unordered_map<std::string, entry>;

    explicit store(sharing s = sharing::one_thread) : sharing_(s) {}

    // Runs one command (argv[0] is its name, in any case) and appends its reply to out.
    after_reply execute(std::span<std::string> argv, std::string& out);
    // Deletes up to `limit` expired keys, soonest first (the periodic sweep); returns how many.
    std::size_t sweep(std::size_t limit);

    // --- the primitives the commands use (resp.cpp), called with the lock held ---
    // The live entry for key, or end() (an expired one is deleted on the way).
    map::iterator find(const std::string& key);
    // The entry for key, created empty if missing.
    map::iterator insert(const std::string& key);
    // What find() returns for a missing key.
    map::iterator end() noexcept { return map_.end(); }
    // Sets (or, with time_point::max(), clears) the entry's deadline.
    void expire_at(map::iterator it, clock::time_point when);
    // Deletes one entry (DEL), or all of them (FLUSHALL), deadlines included.
    void erase(map::iterator it);
    void clear();
    // Keys, those expired but not yet deleted included (as Redis's DBSIZE).
    std::size_t size() const noexcept { return map_.size(); }
    // Keys with a deadline (INFO).
    std::size_t volatile_count() const noexcept { return deadlines_.size(); }
    // Where INFO reads connected_clients and total_connections_received (the server's
    // registry totals, updated by other threads); without them INFO says 0.
    void count_clients(const std::atomic<std::size_t>* connected,
                       const std::atomic<std::uint64_t>* received) noexcept {
        connected_ = connected;
        received_ = received;
    }
    std::size_t connected_clients() const noexcept {
        return connected_ ? connected_->load(std::memory_order_relaxed) : 0;
    }
    std::uint64_t connections_received() const noexcept {
        return received_ ? received_->load(std::memory_order_relaxed) : 0;
    }

private:
    using deadline_key = std::pair<clock::time_point, const std::string*>;
    struct by_deadline {
        bool operator()(const deadline_key& a, const deadline_key& b) const noexcept;
    };

    map map_;
    // Deadlines in order, naming the key inside map_ (unordered_map nodes never move).
    std::set<deadline_key, by_deadline> deadlines_;
    sharing sharing_;
    mutable std::mutex mutex_;
    const std::atomic<std::size_t>* connected_ = nullptr;
    const std::atomic<std::uint64_t>* received_ = nullptr;
};

}  // namespace kv
