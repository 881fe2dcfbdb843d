# cmake/sources.cmake: every file CMake builds for coronet, one per line, beside the Bazel
# BUILD files that list the same files (lib/BUILD.bazel, coro/BUILD.bazel, BUILD.bazel,
# proto/BUILD.bazel, examples/BUILD.bazel, tests/lib/BUILD.bazel, tests/coro/BUILD.bazel,
# tests/proto/BUILD.bazel).
# tools/check-build-lists.py (`make check-build-lists`, a step of `make test`) fails when a
# file is in one build and not the other. Adding a file to lib/, coro/ or proto/: one line here.

# lib/: the reactor layer (asyncore.py).
set(CORONET_LIB_SOURCES
    lib/address.cpp
    lib/buffer_pool.cpp
    lib/cancel_scope.cpp
    lib/datagram_socket.cpp
    lib/epoll_backend.cpp
    lib/error.cpp
    lib/happy_eyeballs.cpp
    lib/log.cpp
    lib/memory_transport.cpp
    lib/perform.cpp
    lib/reactor.cpp
    lib/receive_room.cpp
    lib/readiness_backend.cpp
    lib/resolver.cpp
    lib/select_backend.cpp
    lib/socket.cpp
    lib/timer_heap.cpp
    lib/uring_backend.cpp
    lib/uring_datagram.cpp
    lib/uring_multishot.cpp
)
set(CORONET_LIB_HEADERS
    lib/accept_queue.hpp
    lib/address.hpp
    lib/awaiter.hpp
    lib/backend.hpp
    lib/buffer_pool.hpp
    lib/cancel_scope.hpp
    lib/datagram_queue.hpp
    lib/datagram_socket.hpp
    lib/epoll_backend.hpp
    lib/error.hpp
    lib/free_list.hpp
    lib/event.hpp
    lib/happy_eyeballs.hpp
    lib/intrusive_list.hpp
    lib/log.hpp
    lib/memory_transport.hpp
    lib/operation.hpp
    lib/perform.hpp
    lib/poison.hpp
    lib/reactor.hpp
    lib/receive_room.hpp
    lib/readiness_backend.hpp
    lib/recv_queue.hpp
    lib/resolver.hpp
    lib/run_driver.hpp
    lib/select_backend.hpp
    lib/socket.hpp
    lib/timer.hpp
    lib/timer_heap.hpp
    lib/transport.hpp
    lib/uring_backend.hpp
)

# coro/: the coroutine layer (asynchat.py, producers.py).
set(CORONET_CORO_SOURCES
    coro/async_chat.cpp
    coro/channel.cpp
    coro/connect.cpp
    coro/connection_registry.cpp
    coro/frame_pool.cpp
    coro/lingering_close.cpp
    coro/net.cpp
    coro/open_file_cache.cpp
    coro/producer.cpp
    coro/runtime.cpp
    coro/scan.cpp
    coro/server.cpp
    coro/signal_set.cpp
    coro/spawn.cpp
    coro/task_group.cpp
    coro/timeout.cpp
    coro/tls.cpp
)
set(CORONET_CORO_HEADERS
    coro/async_chat.hpp
    coro/channel.hpp
    coro/connect.hpp
    coro/connection_registry.hpp
    coro/frame_pool.hpp
    coro/lingering_close.hpp
    coro/net.hpp
    coro/open_file_cache.hpp
    coro/producer.hpp
    coro/runtime.hpp
    coro/scan.hpp
    coro/server.hpp
    coro/signal_set.hpp
    coro/spawn.hpp
    coro/task.hpp
    coro/task_group.hpp
    coro/timeout.hpp
    coro/tls.hpp
    coro/when_all.hpp
    coro/when_any.hpp
)

# The umbrella header, <coronet/coronet.hpp>.
# proto/: protocol codecs (HTTP/1.1, RESP2).
set(CORONET_PROTO_SOURCES
    proto/http.cpp
    proto/resp.cpp
)
set(CORONET_PROTO_HEADERS
    proto/http.hpp
    proto/resp.hpp
)

set(CORONET_TOP_HEADERS
    coronet.hpp
)

# examples/: the headers they share, then one line per program: NAME SOURCE...
set(CORONET_EXAMPLE_HEADERS
    examples/cli.hpp
    examples/http.hpp
    examples/resp.hpp
)
set(CORONET_EXAMPLES
    "echo_server examples/echo_server.cpp"
    "kv_server examples/kv_server.cpp examples/resp.cpp"
    "http_server examples/http_server.cpp examples/http.cpp"
    "proxy examples/proxy.cpp"
    "http_client examples/http_client.cpp"
    "chat_server examples/chat_server.cpp"
    "udp_echo examples/udp_echo.cpp"
)

# Unit tests (Catch2), one per line: each file is one test program named after it.
# Test support code the tests link (tests/support: child processes, TCP clients, /proc).
set(CORONET_TEST_SUPPORT_SOURCES
    tests/support/child_process.cpp
    tests/support/proc_stats.cpp
    tests/support/tcp_client.cpp
)

set(CORONET_TESTS
    tests/lib/address_test.cpp
    tests/lib/awaiter_test.cpp
    tests/lib/buffer_pool_test.cpp
    tests/lib/datagram_socket_test.cpp
    tests/lib/error_test.cpp
    tests/lib/free_list_test.cpp
    tests/lib/half_close_test.cpp
    tests/lib/happy_eyeballs_test.cpp
    tests/lib/intrusive_list_test.cpp
    tests/lib/memory_transport_test.cpp
    tests/lib/reactor_test.cpp
    tests/lib/readiness_backend_test.cpp
    tests/lib/receive_room_test.cpp
    tests/lib/recv_queue_test.cpp
    tests/lib/resolver_test.cpp
    tests/lib/socket_test.cpp
    tests/lib/timer_test.cpp
    tests/lib/uring_backend_test.cpp
    tests/coro/async_chat_test.cpp
    tests/coro/channel_buffers_test.cpp
    tests/coro/channel_input_test.cpp
    tests/coro/channel_lifetime_test.cpp
    tests/coro/channel_memory_test.cpp
    tests/coro/channel_output_test.cpp
    tests/coro/channel_poison_test.cpp
    tests/coro/channel_safety_test.cpp
    tests/coro/connect_test.cpp
    tests/coro/frame_pool_test.cpp
    tests/coro/gcc12_forms_test.cpp
    tests/coro/open_file_cache_test.cpp
    tests/coro/producer_test.cpp
    tests/coro/runtime_test.cpp
    tests/coro/scan_test.cpp
    tests/coro/server_test.cpp
    tests/coro/signal_set_test.cpp
    tests/coro/spawn_test.cpp
    tests/coro/task_group_test.cpp
    tests/coro/task_test.cpp
    tests/coro/timeout_test.cpp
    tests/coro/tls_malloc_test.cpp
    tests/coro/tls_test.cpp
    tests/coro/when_any_test.cpp
    tests/proto/http_test.cpp
    tests/proto/resp_test.cpp
)
