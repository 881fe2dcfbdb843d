#!/usr/bin/env python3
"""asyncore_echo: an echo server on Python's asyncore (Medusa's base).

The historical reference coronet re-thinks: asyncore.dispatcher with the
poll() loop (select() stops at 1024 descriptors). Python 3.11 still ships
asyncore; its DeprecationWarning is silenced here on purpose.

Usage: asyncore_echo.py --port P [--host 127.0.0.1]
"""
import argparse
import socket
import sys
import warnings

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import asyncore  # noqa: E402


class EchoHandler(asyncore.dispatcher):
    def __init__(self, sock, conns):
        super().__init__(sock, map=conns)
        self.out = bytearray()

    def handle_read(self):
        data = self.recv(65536)
        if data:
            self.out += data
            self.initiate_send()

    def initiate_send(self):
        try:
            n = self.send(self.out)
        except OSError:
            self.handle_close()
            return
        if n:
            del self.out[:n]

    def writable(self):
        return bool(self.out)

    def readable(self):
        # Stop reading while a backlog is pending, like the C peers.
        return len(self.out) < 65536

    def handle_write(self):
        self.initiate_send()

    def handle_close(self):
        self.close()

    def handle_error(self):
        self.close()


class EchoServer(asyncore.dispatcher):
    def __init__(self, host, port, conns):
        super().__init__(map=conns)
        self.conns = conns
        self.create_socket(socket.AF_INET, socket.SOCK_STREAM)
        self.set_reuse_addr()
        self.bind((host, port))
        self.listen(4096)

    def handle_accept(self):
        # asyncore accepts one connection per loop turn, and with poll() each
        # turn re-registers every descriptor (O(N)): the idle cell's 19,000
        # connections would take about 20 minutes to set up. Accepting what the
        # backlog holds (up to 256) per turn keeps setup to seconds; the idle
        # steady state measured is unchanged.
        for _ in range(256):
            pair = self.accept()
            if pair is None:
                return
            self.handle_accepted(*pair)

    def handle_accepted(self, sock, addr):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        EchoHandler(sock, self.conns)

    def handle_error(self):
        # EMFILE and the like: report and keep serving.
        print("asyncore_echo: %s" % (sys.exc_info()[1],), file=sys.stderr)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--host", default="127.0.0.1")
    args = ap.parse_args()
    conns = {}
    EchoServer(args.host, args.port, conns)
    try:
        asyncore.loop(timeout=30, use_poll=True, map=conns)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
