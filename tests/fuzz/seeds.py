#!/usr/bin/env python3
"""tests/fuzz/seeds.py: writes the seed corpora tests/fuzz/corpus/<target>/ (checked in).

Each seed is a small input that means something in its target's input layout (described at the
top of each tests/fuzz/<target>.cpp), so that fuzzing starts from the interesting cases instead
of having to find them. Run it after changing a layout: python3 tests/fuzz/seeds.py
(tests/fuzz/corpus/tls_server_fuzz/ is not written here: its seeds are ClientHellos captured from
`openssl s_client`, behind that target's header byte and piece sizes, see tests/fuzz/tls_server_fuzz.cpp.)
"""
import pathlib
import shutil

HERE = pathlib.Path(__file__).resolve().parent

# channel_input_fuzz: indices into the tables at the top of channel_input_fuzz.cpp.
TERMS = ["\n", "\r\n", "aa", "aab", "aba", "\r\n\r\n", "\r\n.\r\n", "<<terminator16>>",
         "aaaaaaaaaaaaaaab", "a"]
RECV = [1, 2, 3, 7, 16, 64, 1000, 16 * 1024]
MAX_LINE = [64 * 1024, 0, 1, 2, 5, 16, 100, 1000]
MAX_BUFFER = [16 * 1024 * 1024, 0, 10, 1000]
BACKEND = {"io_uring": 0, "epoll": 1, "select": 2}


def until(term):
    return bytes([3 * TERMS.index(term), 0, 0])


def exactly(n):
    return bytes([1, n & 255, n >> 8])


def some(n):
    return bytes([2, n & 255, n >> 8])


def channel(backend, recv, ops, chunks, stream, max_line=64 * 1024, max_buffer=16 * 1024 * 1024):
    head = bytes([BACKEND[backend], RECV.index(recv),
                  MAX_LINE.index(max_line) | MAX_BUFFER.index(max_buffer) << 4, len(ops)])
    return head + b"".join(ops) + bytes([len(chunks)] + chunks) + stream


def channel_seeds():
    return {
        "lines_one_send": channel("epoll", 16 * 1024, [until("\r\n")] * 3, [],
                                  b"hello world\r\n\r\nI'm not dead yet!\r\n"),
        "http_head_bytewise": channel(
            "io_uring", 1, [until("\r\n"), until("\r\n"), until("\r\n"), exactly(5), some(3)],
            [1, 2, 3], b"GET / HTTP/1.1\r\nHost: x\r\n\r\nhello, pipelined"),
        "term16_split": channel("select", 3, [until("<<terminator16>>")] * 2, [5, 7],
                                b"first<<terminator16>>second<<termin"),
        "line_too_long": channel("epoll", 2, [until("\n"), until("\n"), some(100)], [3],
                                 b"abcdefgh\nab\nrest", max_line=5),
        "resp_request": channel(
            "epoll", 7, [until("\n"), until("\r\n"), exactly(7), until("\r\n"), exactly(5)],
            [4, 1], b"*2\r\n$5\r\nhello\r\n$3\r\nabc\r\n"),
        "exactly_beyond_limit": channel("io_uring", 16, [exactly(20), exactly(5), some(0)], [2],
                                        b"0123456789abcdef", max_buffer=10),
        "self_overlap": channel("epoll", 1, [until("aab"), until("aaaaaaaaaaaaaaab"), until("aba")],
                                [1], b"aaaab" + b"a" * 20 + b"b" + b"ababa"),
        "end_without_terminator": channel("epoll", 64, [until("\r\n"), exactly(100), some(1)],
                                          [10], b"no terminator here"),
    }


def http_seeds():
    host = b"Host: example.com\r\n"
    return {
        "get_root": b"GET / HTTP/1.1\r\n" + host + b"\r\n",
        "get_file_10": b"GET /a/b.txt HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        "symlink_inside": b"GET /a/up/index.html HTTP/1.1\r\n" + host + b"Connection: close\r\n\r\n",
        "symlink_outside": b"GET /a/out/etc/passwd HTTP/1.1\r\n" + host + b"\r\n",
        "symlink_sibling": b"GET /a/next/secret.txt HTTP/1.1\r\n" + host + b"\r\n",
        "dotdot_encoded": b"GET /a/%2e%2E/%2e%2e/x HTTP/1.1\r\n" + host + b"\r\n",
        "absolute_form": b"GET http://example.com/a/%7Eb/?q=1#f HTTP/1.1\r\n" + host +
        b"If-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT\r\n\r\n",
        "smuggling": b"POST / HTTP/1.1\r\n" + host +
        b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        "expect_dangling": b"\r\n\r\nGET /dangling HTTP/1.1\r\n" + host +
        b"Expect: 100-continue\r\nContent-Length: 0\r\n\r\n",
        "raw_path": b"/a/./b//c/%41%00",
        "date_rfc850": b"Sunday, 06-Nov-94 08:49:37 GMT",
        "date_asctime": b"Sun Nov  6 08:49:37 1994",
    }


def resp_seeds():
    def bulk(*args):
        out = b"*%d\r\n" % len(args)
        for a in args:
            out += b"$%d\r\n%s\r\n" % (len(a), a)
        return out
    return {
        "set_get": b"\x00" + bulk(b"SET", b"k", b"v") + bulk(b"GET", b"k"),
        "inline_counter": b"\x00PING\r\nSET a 10\r\nINCRBY a 5\r\nDECR a\r\nGET a\r\nQUIT\r\n",
        "expiry": b"\x00SET k v EX 10 NX\r\nTTL k\r\nPTTL k\r\nEXPIRE k 0\r\nEXISTS k\r\n" +
        bulk(b"SET", b"t", b"1", b"PX", b"1") + b"GET t\r\n",
        "keys": b"\x00MSET a 1 b 2\r\nMGET a b c\r\nDEL a b\r\nDBSIZE\r\nFLUSHALL\r\n",
        "admin": b"\x40CONFIG GET *\r\nCOMMAND\r\nCOMMAND COUNT\r\nINFO\r\nSELECT 0\r\nECHO hi\r\n",
        "negative_bulk": b"\x00*2\r\n$-1\r\n",
        "huge_bulk": b"\x00*1\r\n$9999999999\r\n",
        "bulk_over_limit": b"\x03" + bulk(b"hello"),
        "huge_count": b"\x00*99999999\r\n$1\r\na\r\n",
        "overflow": b"\x00INCR x\r\nDECRBY x -9223372036854775808\r\nINCRBY x 9223372036854775807\r\n",
        "unknown_command": b"\x00UNKNOWN a\r\nb\r\n" + bulk(b"ping", b"x", b"y"),
        "missing_crlf": b"\x00*1\r\n$3\r\nabcde",
    }


def chunked_seeds():
    data = b"the quick brown fox jumps over the lazy dog"
    return {
        "one_piece": b"\x00\x00hello",
        "pieces_footer": b"\x01\x06X-A: 1\x03\x01\x02\x03" + data,
        "two_footers": b"\x02\x04A: 1\x04B: 2\x00" + data,
        "empty_footer_line": b"\x02\x00\x04B: 2\x00" + data,
        "big_pieces": b"\x00\x02\xff\x11" + data * 20,
        "no_data": b"\x00\x00",
    }


def escaping_seeds():
    smtp = b".leading dot\r\n.line\r\n..two\r\nend\r\n.\r\n"
    return {
        "smtp_whole": b"\x00\x00" + smtp,
        "smtp_bytewise": b"\x00\x01\x01" + smtp,
        "smtp_split_crlf": b"\x00\x03\x01\x02\x03" + smtp,
        "verbatim": b"\x01\x02\x05\x07" + smtp,
        "custom_overlap": b"\x02\x03aba\x04abXa\x02\x01\x02" + b"abababa" * 4,
        "custom_refused": b"\x02\x03aba\x02xy\x00abab",
        "custom_verbatim": b"\x03\x02aa\x01b\x01\x01" + b"a" * 9,
    }


def main():
    corpora = {
        "channel_input_fuzz": channel_seeds(),
        "http_request_fuzz": http_seeds(),
        "resp_fuzz": resp_seeds(),
        "chunked_fuzz": chunked_seeds(),
        "escaping_fuzz": escaping_seeds(),
    }
    for target, seeds in corpora.items():
        d = HERE / "corpus" / target
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
        for name, data in seeds.items():
            (d / name).write_bytes(data)
        print(f"{d.relative_to(HERE.parent.parent)}: {len(seeds)} seeds")


if __name__ == "__main__":
    main()
