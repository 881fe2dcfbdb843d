#include <coronet/examples/resp.hpp>

#include <cctype>
#include <charconv>
#include <climits>
#include <functional>

#include <fnmatch.h>

namespace kv {

// --- the commands --------------------------------------------------------------------------------

namespace {

using args = std::span<std::string>;
constexpr auto no_deadline = clock::time_point::max();
constexpr std::string_view not_integer = "ERR value is not an integer or out of range";

std::string lower(std::string_view text) {
    std::string out(text);
    for (char& c : out)
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

void wrong_arity(std::string& out, std::string_view name) {
    reply_error(out, "ERR wrong number of arguments for '" + std::string(name) + "' command");
}

// now + n units of unit_ms milliseconds; nullopt when n <= 0 or it would overflow the clock.
std::optional<clock::time_point> expiry(long long n, long long unit_ms) {
    long long ms = 0;
    if (n <= 0 || __builtin_mul_overflow(n, unit_ms, &ms)) return std::nullopt;
    auto now = clock::now();
    if (ms >= std::chrono::duration_cast<std::chrono::milliseconds>(no_deadline - now).count())
        return std::nullopt;
    return now + std::chrono::milliseconds(ms);
}

void cmd_ping(store&, args a, std::string& out) {
    if (a.size() > 2) return wrong_arity(out, "ping");
    if (a.size() == 1)
        reply_simple(out, "PONG");
    else
        reply_bulk(out, a[1]);
}

void cmd_echo(store&, args a, std::string& out) { reply_bulk(out, a[1]); }

void cmd_quit(store&, args, std::string& out) { reply_simple(out, "OK"); }

// SET key value [NX|XX] [EX seconds|PX milliseconds|KEEPTTL]
void cmd_set(store& db, args a, std::string& out) {
    enum class when { always, if_missing, if_present } condition = when::always;
    clock::time_point deadline = no_deadline;
    bool expiry_given = false, keep_ttl = false;
    for (std::size_t i = 3; i < a.size(); ++i) {
        std::string option = lower(a[i]);
        if (option == "nx" && condition != when::if_present) {
            condition = when::if_missing;
        } else if (option == "xx" && condition != when::if_missing) {
            condition = when::if_present;
        } else if (option == "keepttl" && !expiry_given) {
            keep_ttl = true;
        } else if ((option == "ex" || option == "px") && !keep_ttl && !expiry_given &&
                   i + 1 < a.size()) {
            auto n = to_integer(a[++i]);
            if (!n) return reply_error(out, not_integer);
            auto when = expiry(*n, option == "ex" ? 1000 : 1);
            if (!when) return reply_error(out, "ERR invalid expire time in 'set' command");
            deadline = *when;
            expiry_given = true;
        } else {
            return reply_error(out, "ERR syntax error");
        }
    }
    auto it = db.find(a[1]);
    if ((condition == when::if_missing && it != db.end()) ||
        (condition == when::if_present && it == db.end()))
        return reply_null(out);
    if (it == db.end()) it = db.insert(a[1]);
    it->second.value = std::move(a[2]);
    if (!keep_ttl) db.expire_at(it, deadline);
    reply_simple(out, "OK");
}

// The value of key as a bulk string, or nil.
void reply_value(store& db, const std::string& key, std::string& out) {
    auto it = db.find(key);
    if (it == db.end())
        reply_null(out);
    else
        reply_bulk(out, it->second.value);
}

void cmd_get(store& db, args a, std::string& out) { reply_value(db, a[1], out); }

void cmd_del(store& db, args a, std::string& out) {
    long long deleted = 0;
    for (const auto& key : a.subspan(1)) {
        if (auto it = db.find(key); it != db.end()) {
            db.erase(it);
            ++deleted;
        }
    }
    reply_integer(out, deleted);
}

void cmd_exists(store& db, args a, std::string& out) {
    long long found = 0;
    for (const auto& key : a.subspan(1))
        found += db.find(key) != db.end();
    reply_integer(out, found);
}

// INCR and friends: the value must hold a 64-bit integer; the key keeps its deadline.
void add(store& db, const std::string& key, long long delta, std::string& out) {
    auto it = db.find(key);
    long long n = 0;
    if (it != db.end()) {
        auto value = to_integer(it->second.value);
        if (!value) return reply_error(out, not_integer);
        n = *value;
    }
    if (__builtin_add_overflow(n, delta, &n))
        return reply_error(out, "ERR increment or decrement would overflow");
    if (it == db.end()) it = db.insert(key);
    it->second.value.clear();
    append_decimal(it->second.value, n);
    reply_integer(out, n);
}

void cmd_incr(store& db, args a, std::string& out) { add(db, a[1], 1, out); }
void cmd_decr(store& db, args a, std::string& out) { add(db, a[1], -1, out); }

void cmd_incrby(store& db, args a, std::string& out) {
    auto delta = to_integer(a[2]);
    if (!delta) return reply_error(out, not_integer);
    add(db, a[1], *delta, out);
}

void cmd_decrby(store& db, args a, std::string& out) {
    auto delta = to_integer(a[2]);
    if (!delta) return reply_error(out, not_integer);
    if (*delta == LLONG_MIN) return reply_error(out, "ERR decrement would overflow");
    add(db, a[1], -*delta, out);
}

void cmd_mset(store& db, args a, std::string& out) {
    if (a.size() % 2 == 0) return wrong_arity(out, "mset");
    for (std::size_t i = 1; i < a.size(); i += 2) {
        auto it = db.insert(a[i]);
        it->second.value = std::move(a[i + 1]);
        db.expire_at(it, no_deadline);
    }
    reply_simple(out, "OK");
}

void cmd_mget(store& db, args a, std::string& out) {
    reply_array(out, a.size() - 1);
    for (const auto& key : a.subspan(1))
        reply_value(db, key, out);
}

void cmd_dbsize(store& db, args, std::string& out) {
    reply_integer(out, static_cast<long long>(db.size()));
}

void cmd_flushall(store& db, args a, std::string& out) {
    if (a.size() > 2 || (a.size() == 2 && lower(a[1]) != "sync" && lower(a[1]) != "async"))
        return reply_error(out, "ERR syntax error");
    db.clear();
    reply_simple(out, "OK");
}

// EXPIRE key seconds: 1 when the key exists; a deadline not in the future deletes it.
void cmd_expire(store& db, args a, std::string& out) {
    auto seconds = to_integer(a[2]);
    if (!seconds) return reply_error(out, not_integer);
    auto when = expiry(*seconds, 1000);
    if (!when && *seconds > 0)
        return reply_error(out, "ERR invalid expire time in 'expire' command");
    auto it = db.find(a[1]);
    if (it == db.end()) return reply_integer(out, 0);
    if (when)
        db.expire_at(it, *when);
    else
        db.erase(it);
    reply_integer(out, 1);
}

// Milliseconds left: -2 for a missing key, -1 for one without a deadline.
long long ttl_ms(store& db, const std::string& key) {
    auto it = db.find(key);
    if (it == db.end()) return -2;
    if (it->second.deadline == no_deadline) return -1;
    return std::chrono::duration_cast<std::chrono::milliseconds>(it->second.deadline - clock::now())
        .count();
}

void cmd_ttl(store& db, args a, std::string& out) {
    long long ms = ttl_ms(db, a[1]);
    reply_integer(out, ms < 0 ? ms : (ms + 500) / 1000);
}

void cmd_pttl(store& db, args a, std::string& out) { reply_integer(out, ttl_ms(db, a[1])); }

void cmd_select(store&, args a, std::string& out) {
    auto index = to_integer(a[1]);
    if (!index) return reply_error(out, not_integer);
    if (*index != 0) return reply_error(out, "ERR DB index is out of range");
    reply_simple(out, "OK");
}

std::size_t command_count();

// COMMAND answers an empty list and COMMAND COUNT the truth. Other subcommands are errors:
// redis-cli, refused COMMAND DOCS, falls back to its built-in help (an empty list would leave
// it with no hints at all).
void cmd_command(store&, args a, std::string& out) {
    if (a.size() == 1) return reply_array(out, 0);
    if (lower(a[1]) == "count") return reply_integer(out, static_cast<long long>(command_count()));
    reply_error(out, "ERR unknown subcommand '" + a[1] + "'. Try COMMAND COUNT.");
}

// What CONFIG GET reports; redis-benchmark asks for save and appendonly when it starts.
struct setting {
    const char* name;
    const char* value;
};
constexpr setting settings[] = {{"appendonly", "no"}, {"databases", "1"}, {"save", ""}};

void cmd_config(store&, args a, std::string& out) {
    if (lower(a[1]) != "get")
        return reply_error(out, "ERR unknown subcommand '" + a[1] + "'. Try CONFIG GET.");
    if (a.size() < 3) return wrong_arity(out, "config|get");
    std::vector<const setting*> found;
    for (const auto& s : settings) {
        for (const auto& pattern : a.subspan(2)) {
            if (::fnmatch(pattern.c_str(), s.name, FNM_CASEFOLD) != 0) continue;
            found.push_back(&s);
            break;
        }
    }
    reply_array(out, 2 * found.size());
    for (const setting* s : found) {
        reply_bulk(out, s->name);
        reply_bulk(out, s->value);
    }
}

void cmd_info(store& db, args, std::string& out) {
    std::string text =
        "# Server\r\nredis_version:7.0.0\r\nredis_mode:standalone\r\nserver_name:coronet "
        "kv_server\r\n"
        "\r\n# Clients\r\nconnected_clients:" +
        std::to_string(db.connected_clients()) + "\r\n\r\n# Stats\r\ntotal_connections_received:" +
        std::to_string(db.connections_received()) + "\r\n\r\n# Keyspace\r\n";
    if (db.size() > 0)
        text += "db0:keys=" + std::to_string(db.size()) +
                ",expires=" + std::to_string(db.volatile_count()) + ",avg_ttl=0\r\n";
    reply_bulk(out, text);
}

struct command {
    int arity;  // as Redis: n = exactly n words (the name included), -n = at least n
    void (*run)(store&, args, std::string&);
    after_reply after = after_reply::read_next;
};

const std::unordered_map<std::string_view, command>& command_table() {
    static const std::unordered_map<std::string_view, command> table{
        {"ping", {-1, cmd_ping}},
        {"echo", {2, cmd_echo}},
        {"quit", {-1, cmd_quit, after_reply::close}},
        {"set", {-3, cmd_set}},
        {"get", {2, cmd_get}},
        {"del", {-2, cmd_del}},
        {"exists", {-2, cmd_exists}},
        {"incr", {2, cmd_incr}},
        {"decr", {2, cmd_decr}},
        {"incrby", {3, cmd_incrby}},
        {"decrby", {3, cmd_decrby}},
        {"mset", {-3, cmd_mset}},
        {"mget", {-2, cmd_mget}},
        {"dbsize", {1, cmd_dbsize}},
        {"flushall", {-1, cmd_flushall}},
        {"expire", {3, cmd_expire}},
        {"ttl", {2, cmd_ttl}},
        {"pttl", {2, cmd_pttl}},
        {"select", {2, cmd_select}},
        {"command", {-1, cmd_command}},
        {"config", {-2, cmd_config}},
        {"info", {-1, cmd_info}},
    };
    return table;
}

std::size_t command_count() { return command_table().size(); }

}  // namespace

after_reply store::execute(std::span<std::string> argv, std::string& out) {
    std::string name = lower(argv[0]);
    auto found = command_table().find(name);
    if (found == command_table().end()) {
        std::string text =
            "ERR unknown command '" + argv[0].substr(0, 128) + "', with args beginning with: ";
        for (std::size_t i = 1; i < argv.size() && text.size() < 256; ++i)
            text += "'" + argv[i].substr(0, 128) + "' ";
        reply_error(out, text);
        return after_reply::read_next;
    }
    const command& cmd = found->second;
    std::size_t arity = static_cast<std::size_t>(cmd.arity < 0 ? -cmd.arity : cmd.arity);
    if (cmd.arity > 0 ? argv.size() != arity : argv.size() < arity) {
        wrong_arity(out, name);
        return after_reply::read_next;
    }
    std::unique_lock lock(mutex_, std::defer_lock);  // uncontended and skipped with one thread
    if (sharing_ == sharing::many_threads) lock.lock();
    cmd.run(*this, argv, out);
    return cmd.after;
}

// --- the keyspace --------------------------------------------------------------------------------

bool store::by_deadline::operator()(const deadline_key& a, const deadline_key& b) const noexcept {
    if (a.first != b.first) return a.first < b.first;
    return std::less<const std::string*>()(a.second, b.second);
}

std::size_t store::sweep(std::size_t limit) {
    std::unique_lock lock(mutex_, std::defer_lock);
    if (sharing_ == sharing::many_threads) lock.lock();
    auto now = clock::now();
    std::size_t deleted = 0;
    for (; deleted < limit && !deadlines_.empty() && deadlines_.begin()->first <= now; ++deleted)
        erase(map_.find(*deadlines_.begin()->second));
    return deleted;
}

store::map::iterator store::find(const std::string& key) {
    auto it = map_.find(key);
    if (it != map_.end() && it->second.deadline != no_deadline &&
        it->second.deadline <= clock::now()) {
        erase(it);  // expired: lazy deletion
        return map_.end();
    }
    return it;
}

store::map::iterator store::insert(const std::string& key) { return map_.try_emplace(key).first; }

void store::expire_at(map::iterator it, clock::time_point when) {
    clock::time_point& deadline = it->second.deadline;
    if (deadline == when) return;
    if (deadline != no_deadline) deadlines_.erase({deadline, &it->first});
    deadline = when;
    if (when != no_deadline) deadlines_.insert({when, &it->first});
}

void store::erase(map::iterator it) {
    expire_at(it, no_deadline);
    map_.erase(it);
}

void store::clear() {
    deadlines_.clear();
    map_.clear();
}

}  // namespace kv
