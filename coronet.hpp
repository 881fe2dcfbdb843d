#pragma once
// coronet: Medusa's asyncore/asynchat, re-thought with C++20 coroutines, in one include.
//
// `#include <coronet/coronet.hpp>` and depend on `@coronet//:coronet`: this is the one public
// header and target an application needs (the examples/ use nothing else). It pulls in the
// reactor layer (lib/: reactor, sockets, datagram sockets, name resolution, addresses, timers, errors, logging; asyncore.py) and
// the coroutine layer on top of it (coro/: task, when_all, spawn, with_timeout, socket helpers,
// channels over sockets, TLS or in-memory pairs, the async_chat adapter, producers, an open-file cache; asynchat.py and producers.py), and the
// protocol codecs (proto/: HTTP/1.1 and RESP2). Medusa ancestor:
// `import asyncore, asynchat`.

// lib/: the reactor layer.
#include <coronet/lib/address.hpp>
#include <coronet/lib/datagram_socket.hpp>
#include <coronet/lib/error.hpp>
#include <coronet/lib/happy_eyeballs.hpp>
#include <coronet/lib/log.hpp>
#include <coronet/lib/memory_transport.hpp>
#include <coronet/lib/reactor.hpp>
#include <coronet/lib/resolver.hpp>
#include <coronet/lib/socket.hpp>
#include <coronet/lib/timer.hpp>
#include <coronet/lib/transport.hpp>

// coro/: the coroutine layer.
#include <coronet/coro/async_chat.hpp>
#include <coronet/coro/channel.hpp>
#include <coronet/coro/connect.hpp>
#include <coronet/coro/connection_registry.hpp>
#include <coronet/coro/lingering_close.hpp>
#include <coronet/coro/net.hpp>
#include <coronet/coro/open_file_cache.hpp>
#include <coronet/coro/producer.hpp>
#include <coronet/coro/scan.hpp>
#include <coronet/coro/runtime.hpp>
#include <coronet/coro/server.hpp>
#include <coronet/coro/signal_set.hpp>
#include <coronet/coro/spawn.hpp>
#include <coronet/coro/task.hpp>
#include <coronet/coro/task_group.hpp>
#include <coronet/coro/timeout.hpp>
#include <coronet/coro/tls.hpp>
#include <coronet/coro/when_all.hpp>
#include <coronet/coro/when_any.hpp>

// proto/: protocol codecs (HTTP/1.1, RESP2), bytes in and out.
#include <coronet/proto/http.hpp>
#include <coronet/proto/resp.hpp>
