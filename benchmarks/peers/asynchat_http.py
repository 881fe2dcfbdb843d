#!/usr/bin/env python3
"""asynchat_http: an HTTP/1.1 /hello server on Python's asynchat (Medusa's way).

async_chat with terminator b"\\r\\n\\r\\n": each complete request head is one
found_terminator() call, so pipelined requests are answered in order as
asynchat splits them; answers are pushed on the producer fifo and sent by
asynchat. GET /hello -> 200 "Hello, world!" (13 bytes, Content-Length,
keep-alive); anything else -> 404. Python 3.11 still ships asyncore and
asynchat; their DeprecationWarning is silenced here on purpose.

Usage: asynchat_http.py --port P [--host 127.0.0.1]
"""
import argparse
import socket
import sys
import warnings

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import asyncore  # noqa: E402
    import asynchat  # noqa: E402

HELLO = (b"HTTP/1.1 200 OK\r\n"
         b"Server: asynchat_http\r\n"
         b"Content-Type: text/plain\r\n"
         b"Content-Length: 13\r\n"
         b"\r\n"
         b"Hello, world!")
NOT_FOUND = (b"HTTP/1.1 404 Not Found\r\n"
             b"Server: asynchat_http\r\n"
             b"Content-Length: 0\r\n"
             b"\r\n")
BAD_REQUEST = (b"HTTP/1.1 400 Bad Request\r\n"
               b"Server: asynchat_http\r\n"
               b"Content-Length: 0\r\n"
               b"Connection: close\r\n"
               b"\r\n")


class HttpChannel(asynchat.async_chat):
    ac_in_buffer_size = 65536
    ac_out_buffer_size = 65536

    def __init__(self, sock, conns):
        super().__init__(sock, map=conns)
        self.set_terminator(b"\r\n\r\n")
        self.head = []

    def collect_incoming_data(self, data):
        self.head.append(data)

    def found_terminator(self):
        head = b"".join(self.head)
        self.head = []
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ")
        if len(parts) != 3:
            self.push(BAD_REQUEST)
            self.close_when_done()
            return
        method, target, version = parts
        keep_alive = version == b"HTTP/1.1"
        for h in lines[1:]:
            name, _, value = h.partition(b":")
            name = name.strip().lower()
            value = value.strip().lower()
            if name == b"connection":
                if value == b"close":
                    keep_alive = False
                elif value == b"keep-alive":
                    keep_alive = True
            elif (name == b"content-length" and value != b"0") or name == b"transfer-encoding":
                self.push(BAD_REQUEST)
                self.close_when_done()
                return
        if method == b"GET" and target == b"/hello":
            self.push(HELLO)
        elif method == b"HEAD" and target == b"/hello":
            self.push(HELLO[:-13])
        else:
            self.push(NOT_FOUND)
        if not keep_alive:
            self.close_when_done()

    def handle_error(self):
        self.close()


class HttpServer(asyncore.dispatcher):
    def __init__(self, host, port, conns):
        super().__init__(map=conns)
        self.conns = conns
        self.create_socket(socket.AF_INET, socket.SOCK_STREAM)
        self.set_reuse_addr()
        self.bind((host, port))
        self.listen(4096)

    def handle_accepted(self, sock, addr):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        HttpChannel(sock, self.conns)

    def handle_error(self):
        print("asynchat_http: %s" % (sys.exc_info()[1],), file=sys.stderr)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--host", default="127.0.0.1")
    args = ap.parse_args()
    conns = {}
    HttpServer(args.host, args.port, conns)
    try:
        asyncore.loop(timeout=30, use_poll=True, map=conns)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
