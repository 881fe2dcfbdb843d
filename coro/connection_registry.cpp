#include <coronet/coro/connection_registry.hpp>

namespace coronet {

std::string_view to_string(connection_state s) noexcept {
    switch (s) {
    case connection_state::reading: return "reading";
    case connection_state::writing: return "writing";
    case connection_state::idle: return "idle";
    case connection_state::draining: return "draining";
    }
    return "?";
}

void connection_registry::add(connection_entry& e, connection_totals* totals) noexcept {
    e.id = next_id_++;
    e.started = reactor::clock::now();
    e.seen_active = idle_stamp(e.started);
    e.seen_bytes = 0;
    entries_.push_front(e);
    ++size_;
    if (totals) {
        totals->open.fetch_add(1, std::memory_order_relaxed);
        totals->accepted.fetch_add(1, std::memory_order_relaxed);
    }
}

void connection_registry::remove(connection_entry& e, connection_totals* totals) noexcept {
    entries_.unlink(e);
    --size_;
    closed_in_ += e.ch().received();
    closed_out_ += e.ch().sent().bytes;
    if (totals) totals->open.fetch_sub(1, std::memory_order_relaxed);
}

std::uint64_t connection_registry::bytes_in() const noexcept {
    std::uint64_t n = closed_in_;
    for (connection_entry* e = entries_.front(); e; e = e->next)
        n += e->ch().received();
    return n;
}

std::uint64_t connection_registry::bytes_out() const noexcept {
    std::uint64_t n = closed_out_;
    for (connection_entry* e = entries_.front(); e; e = e->next)
        n += e->ch().sent().bytes;
    return n;
}

connection_state connection_registry::state_of(const connection_entry& e) noexcept {
    if (e.draining) return connection_state::draining;
    if (e.ch().queued() > 0 || !e.ch().read_waiting()) return connection_state::writing;
    return e.ch().buffered() > 0 ? connection_state::reading : connection_state::idle;
}

std::vector<connection_info> connection_registry::list() const {
    std::vector<connection_info> rows;
    rows.reserve(size_);
    auto now = reactor::clock::now();
    for (connection_entry* e = entries_.front(); e; e = e->next) {
        address peer;
        try {
            peer = e->ch().sock().peer_address();
        } catch (const std::exception&) {  // closed already, or the peer is gone
        }
        rows.push_back({.id = e->id,
                        .peer = peer,
                        .age = now - e->started,
                        .bytes_in = e->ch().received(),
                        .bytes_out = e->ch().sent().bytes,
                        .state = state_of(*e)});
    }
    return rows;
}

}  // namespace coronet
