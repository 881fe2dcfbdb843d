#!/usr/bin/env python3
"""tests/examples/tls_bad_input.py PORT CAFILE SERVER_PID: hostile input to a TLS server.

Each case ends in a close by the server (never a hang: every socket has a timeout), and after
each one a normal HTTPS request must still be answered. The last case opens 1,000 connections
that stop mid-handshake while normal requests go on, checks the server's RSS grows by less than
32 MiB, then that the handshake timeout closes them all. Prints one line per case; exits 1 on
the first failure. Loopback only.
"""
import os
import resource
import socket
import ssl
import sys
import time

port, cafile, pid = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
ctx = ssl.create_default_context(cafile=cafile)
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))


def fail(msg):
    print("FAIL:", msg)
    sys.exit(1)


def rss_kib():
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def https_get(path="/hello"):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
    if not data.startswith(b"HTTP/1.1 200"):
        fail(f"a normal request got {data[:60]!r}")
    return data


def closed_by_server(s, what, seconds=10):
    """Reads until the server closes (or resets); fails if it stays open past `seconds`."""
    s.settimeout(seconds)
    try:
        while s.recv(65536):
            pass
    except ConnectionResetError:
        pass
    except socket.timeout:
        fail(f"{what}: the server kept the connection open for {seconds} s")


def client_hello():
    """A real ClientHello, from Python's own TLS client driven through memory BIOs."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


def case(name):
    def run(f):
        f()
        https_get()
        print("ok:", name, "- the server still serves")
    return run


@case("plaintext HTTP sent to the TLS port")
def _():
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        closed_by_server(s, "plaintext")


@case("random bytes")
def _():
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(os.urandom(4096))
        closed_by_server(s, "random bytes")


@case("a ClientHello cut mid-record, then silence until the handshake timeout")
def _():
    hello = client_hello()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(hello[: len(hello) // 2])
        closed_by_server(s, "cut ClientHello")


@case("a reset in the middle of the handshake")
def _():
    hello = client_hello()
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(hello[:40])
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    s.close()  # RST


@case("a 16 KiB record written one byte at a time")
def _():
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
    while True:
        try:
            obj.do_handshake()
            break
        except ssl.SSLWantReadError:
            raw.sendall(outgoing.read())
            data = raw.recv(65536)
            if not data:
                fail("16 KiB record: closed during the handshake")
            incoming.write(data)
    raw.sendall(outgoing.read())
    head = "GET /hello HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
    pad = "".join(f"X-Pad-{i}: {'x' * 4000}\r\n" for i in range(4))
    last = 16 * 1024 - len(head) - len(pad) - len("X-Last: \r\n\r\n")
    request = f"{head}{pad}X-Last: {'y' * last}\r\n\r\n".encode()
    assert len(request) == 16 * 1024  # a full record's plaintext
    obj.write(request)
    record = outgoing.read()
    if len(record) <= 16 * 1024:
        fail(f"16 KiB record: the record is {len(record)} bytes")
    for i in range(len(record)):
        raw.send(record[i : i + 1])
    reply = b""
    raw.settimeout(10)
    while True:
        data = raw.recv(65536)
        if not data:
            break
        incoming.write(data)
        try:
            while True:
                plain = obj.read(65536)
                if not plain:  # close_notify
                    break
                reply += plain
        except (ssl.SSLWantReadError, ssl.SSLZeroReturnError):
            pass
    raw.close()
    if not reply.startswith(b"HTTP/1.1 200"):
        fail(f"16 KiB record: got {reply[:60]!r}")


def stalled_handshakes(count=1000):
    hello = client_hello()
    before = rss_kib()
    stalled = []
    for _ in range(count):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(hello[:60])
        stalled.append(s)
    for _ in range(20):  # normal clients are served meanwhile
        https_get()
    grown = rss_kib() - before
    if grown >= 32 * 1024:
        fail(f"{count} stalled handshakes grew RSS by {grown} KiB")
    for s in stalled:  # the handshake timeout frees every one of them
        closed_by_server(s, "stalled handshake", seconds=30)
        s.close()
    https_get()
    print(f"ok: {count} connections stalled mid-handshake: RSS +{grown} KiB, all closed by the handshake timeout")


stalled_handshakes()
