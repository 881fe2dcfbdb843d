#!/usr/bin/env python3
"""summarize.py: turns a run.sh output directory into RESULTS.md and a plot.

    summarize.py --out benchmarks/out/STAMP --results benchmarks/RESULTS.md \
                 --plot benchmarks/results.png

Reads OUT/raw.tsv (one line per load run), OUT/idle.tsv, OUT/syscalls.tsv,
OUT/micro.json (Google Benchmark), OUT/profile.txt (callgrind_annotate),
OUT/skipped.tsv and OUT/meta.env, all written by run.sh. Per cell and peer it
reports the median and the spread (min-max) over the runs; ratios are medians
over the median of the group's reference peer (meta: reference_<group>). A
summary at the top lists the issue's goals against the measured figures and
every cell where a coronet row loses to a peer. The plot is drawn by gnuplot
(skipped, with a note, when gnuplot is missing).
"""
import argparse
import csv
import json
import re
import os
import shutil
import statistics
import subprocess
import sys

GROUP_TITLES = {
    "echo": "Echo (echo_load; throughput in messages/s)",
    "http": "HTTP GET /hello (wrk, h2load; throughput in requests/s)",
    "file": "Files: static files against nginx (wrk; throughput in files/s)",
    "tls": "TLS: HTTPS against nginx (throughput in requests/s or handshakes/s)",
    "resp": "RESP (redis-benchmark -t set,get -c 50 -d 16; throughput in requests/s)",
    "scale_echo": "Thread scaling: echo_server --threads 1 vs 2",
    "scale_http": "Thread scaling: http_server --threads 1 vs 2",
    "scale_resp": "Thread scaling: kv_server --threads 1 vs 2",
}
GROUP_NOTES = {
    "scale_echo": (
        "The same server with one reactor thread (pinned to CPU {server_cpu}) and with two reactors sharing the "
        "port through SO_REUSEPORT (pinned to CPUs {server_cpu},{client_cpu}); backend {scale_backend}. The load "
        "tool stays on CPU {client_cpu}, so with 2 threads the second reactor and the load tool share a core: "
        "this machine has {cpus} CPUs, and the figures show what a second reactor buys when the client competes "
        "for it, not the scaling on idle cores. Server µs/request adds up both threads' CPU time."),
}
GROUP_NOTES["scale_http"] = GROUP_NOTES["scale_echo"]
GROUP_NOTES["tls"] = (
    "`http_server --tls-cert --tls-key` (OpenSSL through a BIO of its own that reads records from the receive room and writes them into the send buffer, coro/tls.cpp) against nginx with "
    "`peers/nginx_tls.conf` (one worker, access log off, `ssl_session_tickets on`), both on CPU {server_cpu} "
    "and given the same certificate, an ECDSA P-256 one made at run time with the `openssl` command, and both "
    "on OpenSSL's defaults otherwise (TLS 1.2–1.3, two session tickets per full handshake, ALPN http/1.1). "
    "Neither uses kTLS or sendfile for the file: its bytes go through AES-GCM in user space on both. What a "
    "client negotiated with each peer (a second `openssl s_client` offering the first one's ticket) is in "
    "the table below. nginx's µs/request covers its master and worker.")
GROUP_NOTES["scale_resp"] = GROUP_NOTES["scale_echo"]
GROUP_NOTES["file"] = (
    "`http_server --root` on each of the backends {file_backends} against nginx with `peers/nginx_file.conf` "
    "(one worker, access log off, `sendfile on`, `open_file_cache max=1000 inactive=60s`, otherwise nginx's "
    "defaults: no `tcp_nopush`), both on CPU {server_cpu} and serving the same directory: 1KiB.bin, 64KiB.bin "
    "and 10MiB.bin, random bytes made at run time (lib.sh's make_file_assets), each checked byte for byte "
    "through each peer before its runs. Plain HTTP, keep-alive, one file per request. nginx's µs/request covers "
    "its master and worker; for the 10 MiB file a request is a file, so µs/MiB is a tenth of it.")
CELL_NOTES = {
    "echo_64B_c50": "echo_load --connections 50 --size 64 --pipeline 1",
    "echo_64B_c500": "echo_load --connections 500 --size 64 --pipeline 1",
    "echo_4KiB_c50": "echo_load --connections 50 --size 4096 --pipeline 1",
    "echo_4KiB_c500": "echo_load --connections 500 --size 4096 --pipeline 1",
    "echo_64B_c50_pipe16": "echo_load --connections 50 --size 64 --pipeline 16",
    "http_wrk_c50": "wrk -t1 -c50 --latency",
    "http_wrk_c500": "wrk -t1 -c500 --latency",
    "http_wrk_c50_pipe16": "wrk -t1 -c50 -s pipeline.lua -- 16 (16 requests per write; wrk's latencies are "
                           "meaningless when pipelining, so none)",
    "http_h2load_c50_m16": "h2load --h1 -t1 -c50 -m16 (no percentiles from h2load)",
    "file_1KiB_c50": "wrk -t1 -c50 --latency http://…/1KiB.bin (1,024 bytes of random data)",
    "file_64KiB_c50": "wrk -t1 -c50 --latency http://…/64KiB.bin (65,536 bytes of random data)",
    "file_10MiB_c4": "wrk -t1 -c4 --latency http://…/10MiB.bin (10 MiB of random data; throughput in files/s: "
                     "× 10 MiB for bytes/s)",
    "tls_wrk_c50": "wrk -t1 -c50 --latency https://…/hello (keep-alive: one handshake per connection, "
                   "then records only)",
    "tls_full_handshake": "tls_handshakes.sh: 4 × openssl s_time -new -www /hello (one connection after "
                          "another each, a full handshake every time: s_time -new offers no ticket; one "
                          "HTTP/1.0 request per connection; no percentiles). Throughput is handshakes/s, "
                          "bounded by the clients' own handshake work on the other core",
    "tls_resumed_wrk_c50": "wrk -t1 -c50 -s close.lua https://…/hello (Connection: close: one request per "
                           "connection; wrk resumes each reconnection with the previous session's ticket, "
                           "so all but the first 50 handshakes are resumed; TLS 1.3 resumption still does "
                           "an X25519 exchange (psk_dhe_ke) and the server sends a new ticket)",
    "tls_file_10MiB_c4": "wrk -t1 -c4 --latency https://…/10MiB.bin (10 MiB of random bytes; "
                         "throughput in files/s: × 10 MiB for bytes/s)",
    "resp_c50_P1": "redis-benchmark -t set,get -c 50 -d 16 -P 1 (p50/p99: the worse of SET and GET)",
    "resp_c50_P16": "redis-benchmark -t set,get -c 50 -d 16 -P 16 (p50/p99: the worse of SET and GET)",
    "scale_echo_64B_c50": "echo_load --connections 50 --size 64 --pipeline 1",
    "scale_http_wrk_c50": "wrk -t1 -c50 --latency",
    "scale_resp_c50_P16": "redis-benchmark -t set,get -c 50 -d 16 -P 16",
}


def read_tsv(path):
    if not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def read_meta(path):
    meta = {}
    with open(path) as f:
        for line in f:
            k, _, v = line.rstrip("\n").partition("=")
            meta[k] = v
    return meta


def num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def fmt(v, digits=None):
    if v is None:
        return "-"
    if digits is None:
        if abs(v) >= 1000:
            return f"{v:,.0f}"
        if abs(v) >= 100:
            return f"{v:.0f}"
        if abs(v) >= 10:
            return f"{v:.1f}"
        return f"{v:.2f}"
    return f"{v:.{digits}f}"


def stat(values):
    vals = [v for v in values if v is not None]
    if not vals:
        return None, None, None
    return statistics.median(vals), min(vals), max(vals)


def spread(med, lo, hi):
    if med is None:
        return "-"
    if lo == hi:
        return fmt(med)
    return f"{fmt(med)} ({fmt(lo)}–{fmt(hi)})"


def summarize(raw, order):  # noqa: C901
    """{cell: {peer: summary}} plus cell order and group per cell."""
    cells, groups, by = [], {}, {}
    for r in raw:
        cell, peer = r["cell"], r["peer"]
        if cell not in by:
            cells.append(cell)
            by[cell] = {}
            groups[cell] = r["group"]
        by[cell].setdefault(peer, []).append(r)
    out = {}
    for cell in cells:
        out[cell] = {}
        for peer, rows in by[cell].items():
            ok = [r for r in rows if r["rc"] not in ("dead", "start-failed")]
            s = {
                "runs": len(ok),
                "thr": stat([num(r["throughput"]) for r in ok]),
                "p50": stat([num(r["p50_us"]) for r in ok])[0],
                "p99": stat([num(r["p99_us"]) for r in ok])[0],
                "us": stat([num(r["server_us_per_req"]) for r in ok]),
                # utime and stime apart (absent from runs made before run.sh recorded them).
                "user": stat([num(r.get("server_user_us_per_req")) for r in ok]),
                "sys": stat([num(r.get("server_sys_us_per_req")) for r in ok]),
                "load": stat([num(r["load_cpu_pct"]) for r in ok])[0],
                "other": stat([num(r["other_cpu_pct"]) for r in ok])[0],
                "other_max": stat([num(r["other_cpu_pct"]) for r in ok])[2],
                "errors": sum(int(num(r["errors"]) or 0) for r in rows),
                "failed": [r["rc"] for r in rows if r["rc"] in ("dead", "start-failed")],
            }
            out[cell][peer] = s
        # Table order: the peer table's order.
        out[cell] = dict(sorted(out[cell].items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else 999))
    return cells, groups, out


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b



def user_sys(user, sys_):
    """"user / sys" µs, or "-" when the run did not record them apart."""
    if user is None or sys_ is None:
        return "-"
    return f"{fmt(user)} / {fmt(sys_)}"


def is_coronet(peer):
    return peer.startswith("coronet") or peer.endswith(("_t1", "_t2"))


def idle_section(meta, idle, summ, no_ratio="-"):
    """The idle table; `no_ratio` fills the × alone column where there is no echo_64B_c50 median."""
    lines = ["## Idle connections", ""]
    lines.append(
        "`idle_conns --connections N --ping --fresh 20` over source addresses 127.0.0.1–4: the echo server's RSS "
        "(VmRSS of its process tree) before and while the N connections are held (each echoed one byte first, so "
        "the server has accepted and served it); the median time of 20 fresh connections, one at a time, to "
        "connect and to echo 64 bytes beside them; and `echo_load --connections 50 --size 64` for "
        f"{meta.get('dur')} s beside them (× alone: its throughput over the same peer's median in echo_64B_c50, "
        "where that cell ran). The descriptor limit is 20,000 here; the server and idle_conns both run at the "
        "hard limit.")
    lines.append("")
    lines.append("| peer | idle conns | opened | alive | RSS before KiB | RSS with conns KiB | bytes per conn "
                 "| fresh connect µs | fresh echo µs | load msgs/s | × alone | load p99 µs | server µs/msg "
                 "| user / sys µs/msg | errors |")
    lines.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    alone = summ.get("echo_64B_c50", {})
    notes = []
    for r in idle:
        if r.get("note", "-") not in ("-", ""):
            lines.append(f"| {r['peer']} | {r['conns']} | {r['note']} | | | | | | | | | | | | |")
            continue
        thr = num(r.get("load_msgs_per_s"))
        base = alone.get(r["peer"], {}).get("thr", (None,))[0]
        rel = ratio(thr, base)
        lines.append(
            f"| {r['peer']} | {r['conns']} | {r['opened']} | {r['alive']} | {r['rss_before_kb']} | "
            f"{r['rss_with_conns_kb']} | {fmt(num(r.get('bytes_per_conn')), 0) if num(r.get('bytes_per_conn')) is not None else '-'} | "
            f"{fmt(num(r.get('fresh_connect_us')))} | {fmt(num(r.get('fresh_echo_us')))} | {fmt(thr)} | "
            f"{fmt(rel, 2) if rel else no_ratio} | {fmt(num(r.get('load_p99_us')))} | {fmt(num(r.get('load_us_per_msg')))} | "
            f"{user_sys(num(r.get('load_user_us_per_msg')), num(r.get('load_sys_us_per_msg')))} | "
            f"{r.get('load_errors', '-')} |")
    lines.append("")
    lines += notes
    return lines


def syscall_section(meta, rows):
    lines = ["## Syscalls per request", ""]
    lines.append(
        f"coronet's servers under a bounded load ({meta.get('sys_dur')} s per run), counted twice on separate runs "
        "of the same load: `perf stat -e raw_syscalls:sys_enter -p PID` (next to no cost to the server: this is "
        "the syscalls/request column; throughput is from this run) and `strace -c -f -p PID` (which slows the "
        "server, and a slower server batches more per call: only its breakdown is used, as calls per request "
        "of that run). Requests are the load tool's count; the server's connection setup falls in the window "
        "too. Goal: io_uring ≤ 0.2 syscalls/request at 50 pipelined connections.")
    lines.append("")
    lines.append("| workload | backend | requests | syscalls | syscalls/request | throughput /s "
                 "| strace: syscalls/request | strace: top syscalls (calls/request) |")
    lines.append("|---|---|---:|---:|---:|---:|---:|---|")
    for r in rows:
        top = r.get("top", "-")
        top = "-" if top in ("-", "") else ", ".join(
            f"`{t.split(':')[0]}` {t.split(':')[1]}" for t in top.split(",") if ":" in t)
        lines.append(
            f"| {r['workload']} | {r['backend']} | {fmt(num(r['requests']))} | {fmt(num(r['syscalls']))} | "
            f"**{fmt(num(r['per_req']), 3) if num(r['per_req']) is not None else '-'}** | {fmt(num(r['throughput']))} | "
            f"{fmt(num(r['strace_per_req']), 3) if num(r['strace_per_req']) is not None else '-'} | {top} |")
    lines.append("")
    return lines


def micro_section(meta, micro):
    lines = ["## Micro benchmarks (Google Benchmark)", ""]
    ctx = micro.get("context", {})
    lines.append(
        f"`benchmarks/micro --benchmark_min_time={meta.get('micro_min_time')}`, pinned to CPU "
        f"{meta.get('server_cpu', '0')} (coronet's code built with --config=opt; Debian's libbenchmark reports "
        f"itself as a {ctx.get('library_build_type', '?')} build, which affects only its own timing loop), "
        f"{ctx.get('num_cpus', '?')} CPUs at {ctx.get('mhz_per_cpu', '?')} MHz. scan_*: the terminator at the end "
        "of an input with no '\\r' before it (the whole input scanned), args = terminator index (0: 2-byte "
        "\"\\r\\n\", 1: 4-byte \"\\r\\n\\r\\n\", 2: 16-byte) / input bytes; scan_pipelined_*: every terminator of "
        "64 pipelined request heads in turn. task_create_resume: a task that finishes at once, created and "
        "awaited. channel_push_flush: 64 pushes of 40 bytes then flush() over a socketpair. channel_read_until: "
        "64 pipelined request heads in one send, read back with read_until(\"\\r\\n\\r\\n\"). Times and rates are "
        "CPU time (Google Benchmark's bytes and items per second are per CPU second), so a busy machine "
        "disturbs them less than wall time.")
    lines.append("")
    lines.append("| benchmark | what | CPU ns per iteration | GB/s | M items/s | × memmem |")
    lines.append("|---|---|---:|---:|---:|---:|")
    bench = [b for b in micro.get("benchmarks", []) if b.get("run_type", "iteration") == "iteration"]
    by_name = {b["name"]: b for b in bench}
    for b in bench:
        unit = {"ns": 1, "us": 1e3, "ms": 1e6, "s": 1e9}.get(b.get("time_unit", "ns"), 1)
        ns = b.get("cpu_time", 0) * unit
        gbs = b.get("bytes_per_second")
        ips = b.get("items_per_second")
        rel = "-"
        if b["name"].startswith("scan_") and "find_terminator" in b["name"]:
            other = by_name.get(b["name"].replace("find_terminator", "memmem"))
            if other and other.get("bytes_per_second") and gbs:
                rel = fmt(gbs / other["bytes_per_second"], 2)
        err = " (error: " + b["error_message"] + ")" if b.get("error_occurred") else ""
        lines.append(
            f"| {b['name']} | {b.get('label', '')}{err} | {fmt(ns)} | {fmt(gbs / 1e9) if gbs else '-'} | "
            f"{fmt(ips / 1e6) if ips else '-'} | {rel} |")
    lines.append("")
    lines.append("× memmem > 1: find_terminator scans faster than glibc memmem on the same input.")
    lines.append("")
    return lines


def short_function(fn):
    """callgrind_annotate's "file:function [object]" without the object and the file."""
    fn = re.sub(r" \[/[^\]]*\]$", "", fn)
    m = re.match(r"^([^ :(]*/[^ :(]*|\?\?\?):(.*)$", fn)
    return m.group(2) if m else fn


def parse_profile(profile, section="inclusive"):
    """(requests, [(Ir, percent, function)]) from run.sh's profile.txt: the
    callgrind_annotate table of the "== inclusive" or "== self" section."""
    if not profile:
        return None, []
    reqs, rows, started, here = None, [], False, section == "inclusive"
    for line in profile.splitlines():
        if line.startswith("requests="):
            reqs = num(line.split("=", 1)[1])
            continue
        if line.startswith("== "):
            here, started = line[3:].strip() == section, False
            continue
        if not here:
            continue
        if "file:function" in line:
            started = True
            continue
        if not started or not line.strip():
            continue
        if line.startswith("-"):
            if rows:  # the end of the table
                started = False
            continue
        parts = line.split(None, 1)
        if len(parts) < 2:
            continue
        ir = num(parts[0].replace(",", ""))
        rest = parts[1]
        pct = None
        if rest.startswith("("):
            pct, _, rest = rest.partition(")")
            pct = pct.strip("( %")
        rest = rest.strip()
        if ir is None:
            continue
        rows.append((ir, pct, short_function(rest)))
    return reqs, rows


def profile_section(meta, profile):
    lines = ["## Profile (callgrind)", ""]
    if meta.get("profile") != "1":
        lines.append("Not run (`PROFILE=1 benchmarks/run.sh` profiles http_server under callgrind; on by default "
                     "in the full run).")
        lines.append("")
        return lines
    reqs, rows = parse_profile(profile)
    if not rows:
        lines.append("The profile step ran but produced no callgrind output (see the run's log).")
        lines.append("")
        return lines
    total = rows[0][0] if rows else None
    lines.append(
        f"http_server (epoll backend; valgrind does not model io_uring's rings, and the user-space path above the "
        f"backend is the same) under `valgrind --tool=callgrind`, loaded by `wrk -t1 -c10 -s pipeline.lua -- 16` "
        f"for {meta.get('profile_dur')} s ({fmt(reqs) if reqs else '?'} requests"
        + (f", {fmt(total / reqs)} instructions per request in all" if reqs and total else "")
        + "; user-space instructions only: the kernel's share, syscalls and TCP, is not in callgrind's count). "
          "The 15 functions with the highest inclusive cost (instructions executed in them and in what they "
          "call; `callgrind_annotate --inclusive=yes`):")
    lines.append("")
    lines += profile_table(rows[:15], reqs, "inclusive Ir")
    _, self_rows = parse_profile(profile, "self")
    if self_rows:
        lines.append("The 15 with the highest self cost (instructions in the function's own code), which is where "
                     "the time goes:")
        lines.append("")
        lines += profile_table(self_rows[:15], reqs, "self Ir")
    return lines


def profile_table(rows, reqs, what):
    lines = [f"| {what} | % | per request | function |", "|---:|---:|---:|---|"]
    for ir, pct, fn in rows:
        fn = fn.replace("|", "\\|")
        if len(fn) > 140:
            fn = fn[:137] + "..."
        lines.append(f"| {ir:,.0f} | {pct or '-'} | {fmt(ir / reqs) if reqs else '-'} | `{fn}` |")
    lines.append("")
    return lines


def med(summ, cell, peer, key="thr"):
    s = summ.get(cell, {}).get(peer)
    return s[key][0] if s else None


TLS_GOALS = (
    ("tls_wrk_c50", "TLS keep-alive /hello, wrk -c50", "µs/req"),
    ("tls_full_handshake", "TLS full handshakes (ECDSA P-256)", "µs/handshake"),
    ("tls_resumed_wrk_c50", "TLS resumed handshakes, wrk -c50", "µs/req"),
    ("tls_file_10MiB_c4", "TLS 10 MiB file, wrk -c4", "µs/file"),
)


def tls_goal_rows(summ, be, run=""):
    """The goals table's TLS rows: coronet's server CPU per request at or below nginx's; `run`
    names the run they come from when it is not the one of the rest of the table (--splice)."""
    rows = []
    for cell, what, unit in TLS_GOALS:
        what = f"{what} ({run})" if run else what
        if cell not in summ:
            continue
        c, n = med(summ, cell, f"coronet_https_{be}", "us"), med(summ, cell, "nginx_tls", "us")
        ct, nt = med(summ, cell, f"coronet_https_{be}"), med(summ, cell, "nginx_tls")
        r = ratio(c, n)
        ok = None if c is None or n is None else c <= n
        rows.append(f"| {what} | ≤ nginx µs/req | {fmt(c)} {unit} ({fmt(r, 2) if r else '-'}× nginx), "
                    f"{fmt(ct)}/s | nginx {fmt(n)} {unit}, {fmt(nt)}/s | "
                    f"{'-' if ok is None else ('yes' if ok else '**no**')} |")
    return rows


FILE_GOALS = (
    ("file_1KiB_c50", "file 1 KiB, wrk -c50", "µs/req", None),
    ("file_64KiB_c50", "file 64 KiB, wrk -c50", "µs/req", None),
    ("file_10MiB_c4", "file 10 MiB, wrk -c4", "µs/file", 10),
)


def file_goal_rows(summ, be, run=""):
    """The goals table's file rows: coronet's server CPU per request at or below nginx's, coronet
    on `be` (the first of the file backends); the other backends' figures beside nginx's."""
    rows = []
    for cell, what, unit, mib in FILE_GOALS:
        what = f"{what} ({run})" if run else what
        if cell not in summ:
            continue
        c, n = med(summ, cell, f"coronet_file_{be}", "us"), med(summ, cell, "nginx_file", "us")
        ct, nt = med(summ, cell, f"coronet_file_{be}"), med(summ, cell, "nginx_file")
        r = ratio(c, n)
        ok = None if c is None or n is None else c <= n

        def per_mib(v):
            return f" = {fmt(v / mib)} µs/MiB" if mib and v is not None else ""
        others = "".join(
            f"; {p[len('coronet_file_'):]} {fmt(med(summ, cell, p, 'us'))} {unit}, {fmt(med(summ, cell, p))}/s"
            for p in summ[cell] if p.startswith("coronet_file_") and p != f"coronet_file_{be}")
        rows.append(f"| {what} | ≤ nginx µs/req | {fmt(c)} {unit}{per_mib(c)} ({fmt(r, 2) if r else '-'}× nginx), "
                    f"{fmt(ct)}/s | nginx {fmt(n)} {unit}{per_mib(n)}, {fmt(nt)}/s{others} | "
                    f"{'-' if ok is None else ('yes' if ok else '**no**')} |")
    return rows


def user_share_lines(summ, cell="http_wrk_c50_pipe16"):
    """One line: each peer's user and sys µs/request in `cell`, and user space's share."""
    parts = []
    for peer, st in summ.get(cell, {}).items():
        u, k = st["user"][0], st["sys"][0]
        if u is None or k is None or u + k <= 0:
            continue
        parts.append(f"`{peer}` {fmt(u)} + {fmt(k)} µs/req ({100 * u / (u + k):.0f} % user)")
    if not parts:
        return []
    return [f"**User space's share of the server's CPU** ({cell}, median user + sys µs/request): "
            + "; ".join(parts) + ".", ""]


def losses_in(summ, only=None):
    """A coronet row whose median is worse than some peer's: (losses with the spreads apart, ties)."""
    losses, ties = [], []
    for cell, peers in summ.items():
        if cell.startswith("scale_") or (only and not only(cell)):
            continue
        for cp, cs in peers.items():
            if not cp.startswith("coronet") or cs["thr"][0] is None:
                continue
            for pp, ps in peers.items():
                if pp.startswith("coronet") or ps["thr"][0] is None:
                    continue
                for key, worse, what in (("us", lambda x, y: x > y, "server µs/req"),
                                         ("thr", lambda x, y: x < y, "throughput")):
                    cm, clo, chi = cs[key]
                    pm, plo, phi = ps[key]
                    if None in (cm, pm) or not worse(cm, pm):
                        continue
                    clear = (clo > phi) if key == "us" else (chi < plo)
                    entry = (f"{cell}: `{cp}` {what} {fmt(cm)} vs `{pp}` {fmt(pm)} "
                             f"({fmt(cm / pm if key == 'us' else pm / cm, 2)}× worse)")
                    (losses if clear else ties).append(entry)
    return losses, ties


def idle_goal_rows(idle, summ, be, run=""):
    """The goals table's idle rows (coronet on `be`): bytes per idle connection, and the load beside
    them over the same peer's median alone in echo_64B_c50. A run without that cell (--splice of the
    idle cell alone) says "—" for the ratio and judges the goal on the bytes only when they miss it;
    `run` names the run the rows come from when it is not the one of the rest of the table."""
    rows = []
    for r in idle:
        if r["peer"] != f"coronet_echo_{be}" or num(r.get("bytes_per_conn")) is None:
            continue
        b = num(r["bytes_per_conn"])
        thr = num(r.get("load_msgs_per_s"))
        rel = ratio(thr, med(summ, "echo_64B_c50", r["peer"]))
        if "echo_64B_c50" in summ:
            load, ok = f"load {fmt(rel, 2) if rel else '?'}× alone", b <= 768 and (rel is None or rel >= 0.9)
        else:
            load, ok = "load — × alone (no echo_64B_c50 in this run)", (False if b > 768 else None)
        what = f"idle, {r['conns']} conns" + (f" ({run})" if run else "")
        rows.append(f"| {what} | ≤ 768 B/conn; no throughput loss beside them | {b:,.0f} B/conn; {load} | "
                    f"(see the idle table) | {'-' if ok is None else ('yes' if ok else '**no**')} |")
    return rows


def summary_section(meta, summ, idle, syscalls, profile):
    """The issue's goals against this run's figures, and every cell where a coronet row loses."""
    be = (meta.get("backends") or "io_uring").split()[0]
    lines = ["## Summary: goals and where coronet loses", ""]
    lines.append(f"Goals from the benchmarks issue against this run (coronet rows on {be}; medians; a goal is "
                 "judged on server CPU per request, which a shared machine disturbs least).")
    lines.append("")
    lines.append("| cell | goal | coronet | peers | met? |")
    lines.append("|---|---|---:|---|---|")

    def row(cell, goal, value, peers, ok):
        verdict = "-" if ok is None else ("yes" if ok else "**no**")
        lines.append(f"| {cell} | {goal} | {value} | {peers} | {verdict} |")

    def us(cell, peer):
        return med(summ, cell, peer, "us")

    c = us("http_wrk_c50_pipe16", f"coronet_http_{be}")
    a = us("http_wrk_c50_pipe16", "asio_http")
    ct = med(summ, "http_wrk_c50_pipe16", f"coronet_http_{be}")
    at = med(summ, "http_wrk_c50_pipe16", "asio_http")
    row("HTTP pipelined ×16", "≤ 0.5 µs/req; throughput ≥ Asio's",
        f"{fmt(c)} µs/req, {fmt(ct)}/s", f"asio_http {fmt(a)} µs/req, {fmt(at)}/s",
        None if c is None else (c <= 0.5 and (at is None or (ct or 0) >= at)))
    c, n = us("http_wrk_c50", f"coronet_http_{be}"), us("http_wrk_c50", "nginx")
    row("HTTP wrk -c50", "≤ nginx µs/req", f"{fmt(c)} µs/req", f"nginx {fmt(n)}",
        None if c is None or n is None else c <= n)
    c, e = us("echo_64B_c50", f"coronet_echo_{be}"), us("echo_64B_c50", "epoll_echo")
    row("echo 64 B, 50 conns", "≤ raw epoll µs/msg", f"{fmt(c)} µs/msg", f"epoll_echo {fmt(e)}",
        None if c is None or e is None else c <= e)
    c = us("echo_64B_c50_pipe16", f"coronet_echo_{be}")
    row("echo 64 B ×16 pipelined", "≤ 0.48 µs/msg", f"{fmt(c)} µs/msg",
        f"epoll_echo {fmt(us('echo_64B_c50_pipe16', 'epoll_echo'))}, "
        f"uring_echo {fmt(us('echo_64B_c50_pipe16', 'uring_echo'))}", None if c is None else c <= 0.48)
    ct, rt = med(summ, "resp_c50_P16", f"coronet_kv_{be}"), med(summ, "resp_c50_P16", "redis-server")
    c, r = us("resp_c50_P16", f"coronet_kv_{be}"), us("resp_c50_P16", "redis-server")
    row("RESP -P16 (SET+GET)", "≥ 1.0× redis throughput, ≤ redis µs/op", f"{fmt(ct)}/s, {fmt(c)} µs/op",
        f"redis {fmt(rt)}/s, {fmt(r)} µs/op",
        None if None in (ct, rt, c, r) else (ct >= rt and c <= r))
    lines += file_goal_rows(summ, (meta.get("file_backends") or be).split()[0])
    lines += tls_goal_rows(summ, be)
    lines += idle_goal_rows(idle, summ, be)
    for r in syscalls:
        if r["backend"] == "io_uring" and r["workload"] == "echo_64B_c50_pipe16" and num(r["per_req"]) is not None:
            row("syscalls, echo 50 conns ×16", "io_uring ≤ 0.2 syscalls/request", f"{num(r['per_req']):.3f}",
                "-", num(r["per_req"]) <= 0.2)
        if r["backend"] == "io_uring" and r["workload"] == "http_wrk_c50_pipe16" and num(r["per_req"]) is not None:
            row("syscalls, HTTP 50 conns ×16", "io_uring ≤ 0.2 syscalls/request", f"{num(r['per_req']):.3f}",
                "-", num(r["per_req"]) <= 0.2)
    lines.append("")
    lines += user_share_lines(summ)

    # Losses: a coronet row whose median is worse than some peer's, and whose
    # spread does not overlap it (differences inside the spread are ties).
    losses, ties = losses_in(summ)
    lines.append("**Where coronet loses** (a coronet row worse than a peer with the spreads apart):")
    lines.append("")
    lines += [f"- {x}" for x in losses] or ["- nowhere in this run"]
    lines.append("")
    if ties:
        lines.append(f"Worse medians inside the spread (ties, not losses): {len(ties)}; "
                     + "; ".join(ties[:12]) + ("; …" if len(ties) > 12 else "") + ".")
        lines.append("")
    reqs, rows = parse_profile(profile, "self")
    if rows:
        lines.append("**What dominates the profile** (callgrind, http_server under pipelined HTTP; self cost, "
                     "% of all instructions): " + "; ".join(
                         f"`{fn[:80]}` {pct or '?'} %" for _, pct, fn in rows[:6]) + ". Tables below.")
        lines.append("")
    return lines

def group_sections(meta, cells, groups, summ, noisy, tls_info):
    """One section per group of load cells, one table per cell."""
    lines = []
    current_group = None
    for cell in cells:
        g = groups[cell]
        ref = meta.get(f"reference_{g}")
        if g != current_group:
            lines.append(f"## {GROUP_TITLES.get(g, g)}")
            lines.append("")
            lines.append(f"Reference peer for the ratios: `{ref}`.")
            lines.append("")
            if g in GROUP_NOTES:
                lines.append(GROUP_NOTES[g].format(
                    server_cpu=meta.get("server_cpu", "0"), client_cpu=meta.get("client_cpu", "1"),
                    scale_backend=meta.get("scale_backend", "?"), cpus=meta.get("cpus", "?"),
                    file_backends=", ".join(meta.get("file_backends", "?").split())))
                lines.append("")
            if g == "tls":
                lines += tls_info_table(tls_info)
            current_group = g
        lines.append(f"### {cell}")
        lines.append("")
        if cell in CELL_NOTES:
            lines.append(f"`{CELL_NOTES[cell]}`")
            lines.append("")
        lines.append("| peer | throughput /s | p50 µs | p99 µs | server µs/req | user µs/req | sys µs/req "
                     "| load CPU % | other CPU % | thr × ref | µs/req × ref | errors |")
        lines.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        rs = summ[cell].get(ref)
        for peer, s in summ[cell].items():
            if s["failed"] and s["runs"] == 0:
                lines.append(f"| {peer} | failed ({', '.join(sorted(set(s['failed'])))}) | | | | | | | | | | |")
                continue
            tr = ratio(s["thr"][0], rs["thr"][0]) if rs else None
            ur = ratio(s["us"][0], rs["us"][0]) if rs else None
            # Runs not done because the server had died (or died during them) count as errors.
            lost = f" ({len(s['failed'])} run{'s' if len(s['failed']) > 1 else ''} lost: server dead)" \
                if s["failed"] else ""
            lines.append(
                f"| {peer} | {spread(*s['thr'])} | {fmt(s['p50'])} | {fmt(s['p99'])} | {spread(*s['us'])} | "
                f"{fmt(s['user'][0])} | {fmt(s['sys'][0])} | "
                f"{fmt(s['load'])} | {fmt(s['other'])}{noisy(s)} | {fmt(tr, 2) if tr else '-'} | "
                f"{fmt(ur, 2) if ur else '-'} | {s['errors']}{lost} |")
        lines.append("")
    return lines


def tls_info_table(tls_info):
    if not tls_info:
        return []
    lines = ["A second connection to each peer offering the first one's session ticket (`openssl s_client "
             "-sess_out`, then `-sess_in`):", "",
             "| peer | second handshake | protocol | cipher | key exchange | ALPN |", "|---|---|---|---|---|---|"]
    for r in tls_info:
        lines.append("| " + " | ".join((r + ["-"] * 6)[:6]) + " |")
    lines.append("")
    return lines


def write_markdown(path, meta, raw, cells, groups, summ, idle, skipped, plot_name, syscalls, micro, profile,
                   tls_info=()):
    noise_max = num(meta.get("noise_max")) or 25.0

    def noisy(s):
        return " ⚠" if s["other_max"] is not None and s["other_max"] > noise_max else ""

    has_coronet = any(p.startswith("coronet") for c in summ.values() for p in c)
    not_built = [s["peer"] for s in skipped if s["peer"].startswith("coronet")]
    quick = meta.get("quick") == "1"
    lines = []
    title = "coronet benchmarks"
    label = []
    if not has_coronet:
        why = "coronet's servers were not built" if not_built else f"left out by PEERS={meta.get('peers')}"
        label.append(f"PEERS ONLY, no coronet rows ({why})")
    elif not_built:
        label.append("partial: some coronet rows not built (" + ", ".join(not_built) + ")")
    if quick:
        label.append(f"QUICK run ({meta.get('dur')} s per run): indicative figures only")
    lines.append(f"# {title}" + (f" — {'; '.join(label)}" if label else ""))
    lines.append("")
    lines.append(
        f"Machine: {meta.get('cpu_model')} ×{meta.get('cpus')} CPUs, {meta.get('kernel')}, "
        f"{meta.get('date')}, commit {meta.get('commit')}; load average at start {meta.get('loadavg_at_start')}.")
    lines.append("")
    lines.append(
        f"Run: `{'QUICK=1 ' if quick else ''}benchmarks/run.sh`, {meta.get('dur')} s per run "
        f"(wrk: {meta.get('dur_wrk')} s; redis-benchmark: a request count sized per peer by a short first run), "
        f"{meta.get('runs')} runs per peer and cell interleaved (A B C, C B A, A B C), "
        f"{meta.get('elapsed_s')} s in all. Servers pinned to CPU 0, load tools to CPU 1 (taskset), loopback only. "
        f"Tools: {meta.get('tools')}.")
    lines.append("")
    lines.append(
        "Columns: throughput and server µs/request are the median over the runs with the spread (min–max) in "
        "brackets; p50/p99 are the medians of the tool's percentiles (µs); server µs/request = Δ(utime+stime) of "
        "the server process tree (/proc/PID/stat, clock ticks) × 10⁶ / CLK_TCK / requests, and user and sys "
        "µs/request the same of utime (user space) and of stime (the kernel) alone, medians each (so they need not "
        "add up to the total's median; the kernel splits a process's run time between the two by the ticks it "
        "sampled in each, so over a short run the split is coarse); load CPU % is the load "
        "tool's CPU over its run (one core = 100 %); other CPU % is what neither used (a busy machine shows "
        f"here; a run where it passed {meta.get('noise_max')} % was done again, up to twice, while the "
        f"{meta.get('noise_budget')} s budget for that lasted ({meta.get('noise_spent')} s used), and a figure "
        "marked ⚠ still passed it); × ref are ratios of medians against the group's reference peer.")
    lines.append("")
    others = [num(r["other_cpu_pct"]) for r in raw if num(r["other_cpu_pct"]) is not None]
    busy = [o for o in others if o > noise_max]
    if busy:
        lines.append(
            f"**⚠ Noisy machine: in {len(busy)} of {len(others)} runs other processes used more than "
            f"{noise_max:g} % of a core (median of those: {statistics.median(busy):.0f} %); throughput and "
            "latency of the cells marked ⚠ are not to be trusted, server µs/request less affected.**")
        lines.append("")
    if skipped:
        lines.append("Skipped rows: " + "; ".join(f"`{s['peer']}` ({s['reason']})" for s in skipped) + ".")
        lines.append("")
    lines.append(f"![results]({plot_name})")
    lines.append("")
    lines += summary_section(meta, summ, idle, syscalls, profile)

    lines += group_sections(meta, cells, groups, summ, noisy, tls_info)

    if idle:
        lines += idle_section(meta, idle, summ)
    if syscalls:
        lines += syscall_section(meta, syscalls)
    if micro:
        lines += micro_section(meta, micro)
    lines += profile_section(meta, profile)

    with open(path, "w") as f:
        f.write("\n".join(lines))


# The groups a run of their cells alone may splice into RESULTS.md (--splice), in the order of
# their sections and goal rows: (name, section title prefix, goal rows' prefix, goal rows, what
# the goal is, the meta key naming coronet's backends, the first of which the goals are on).
SPLICE_GROUPS = {
    "file": ("file", "## Files", "| file ", file_goal_rows,
             "coronet's server CPU per request at or below nginx's in every file cell", "file_backends"),
    "tls": ("TLS", "## TLS", "| TLS ", tls_goal_rows,
            "coronet's server CPU per request at or below nginx's in every TLS cell", "backends"),
}


def splice(path, meta, raw, cells, groups, summ, tls_info, idle=(), extra_parts=()):
    """--splice: only the file or TLS groups or the idle cell ran (`SPLICE=1 CELLS=^tls_
    benchmarks/run.sh`, ^file_ or idle): each group's section replaces its section of the existing
    RESULTS.md (or goes in before the next one of SPLICE_GROUPS, else before the RESP one; the idle
    section before the syscall one), and its goals replace its rows of the summary's goals table.
    The rest of the file is left as the last full run wrote it. `extra_parts` names what else the
    run measured (syscalls, micro, profile), which --splice cannot place: such a run is refused."""
    noise_max = num(meta.get("noise_max")) or 25.0

    def noisy(st):
        return " ⚠" if st["other_max"] is not None and st["other_max"] > noise_max else ""

    ran = [g for g in SPLICE_GROUPS if any(groups[c] == g for c in cells)]
    if not ran and not idle:
        sys.exit("summarize.py --splice: this run has none of the cells it can splice ("
                 + ", ".join(SPLICE_GROUPS) + " groups, the idle cell)")
    others_in = sorted(set(groups[c] for c in cells if groups[c] not in SPLICE_GROUPS)) + list(extra_parts)
    if others_in:
        sys.exit(f"summarize.py --splice: this run has cells of groups it cannot splice: {others_in} (it "
                 "can splice the " + ", ".join(SPLICE_GROUPS) + " groups and the idle cell)")
    old = open(path).read().split("\n") if os.path.exists(path) else []
    order = list(SPLICE_GROUPS)
    for g in ran:
        name, title, goal_prefix, goal_rows, goal, be_key = SPLICE_GROUPS[g]
        gcells = [c for c in cells if groups[c] == g]
        gsumm = {c: summ[c] for c in gcells}
        be = (meta.get(be_key) or meta.get("backends") or "io_uring").split()[0]
        sec = group_sections(meta, gcells, groups, gsumm, noisy, tls_info)
        others = [num(r["other_cpu_pct"]) for r in raw if r["group"] == g and num(r["other_cpu_pct"]) is not None]
        busy = max(others) if others else 0
        run = (f"These figures come from a run of the {name} cells alone (`SPLICE=1 "
               f"{'QUICK=1 ' if meta.get('quick') == '1' else ''}CELLS='{meta.get('cells')}' benchmarks/run.sh`), "
               f"{meta.get('date')}, commit {meta.get('commit')}, {meta.get('dur')} s per run (wrk: "
               f"{meta.get('dur_wrk')} s), {meta.get('runs')} runs per peer and cell interleaved, "
               f"{meta.get('elapsed_s')} s in all, load average at start {meta.get('loadavg_at_start')}; tools: "
               f"{meta.get('tools')}. Other processes used a median of "
               f"{statistics.median(others) if others else 0:.0f} % of a core during these runs (max {busy:.0f} %)"
               + (": a loaded machine, so throughput is unreliable, server µs/request less so." if busy > noise_max
                  else ".")
               + " User and sys µs/request are the server's utime and stime apart (medians each, from "
               "/proc/PID/stat as the total). The rest of this file is from the full run described at the top.")
        rows = goal_rows(gsumm, be)
        goals = ["| cell | goal | coronet | peers | met? |", "|---|---|---:|---|---|"] + rows
        losses, ties = losses_in(gsumm)
        extra = [run, "", f"Goal: {goal} (coronet on {be}):", ""] + goals + [
            "", "Where coronet loses here (spreads apart): " + ("; ".join(losses) if losses else "nowhere")
            + (f". Worse medians inside the spread (ties): {'; '.join(ties)}." if ties else "."), ""]
        sec = sec[:2] + extra + sec[2:]
        start = next((i for i, ln in enumerate(old) if ln.startswith(title)), None)
        if start is not None:
            end = next((i for i in range(start + 1, len(old)) if old[i].startswith("## ")), len(old))
            old = old[:start] + sec + old[end:]
        else:
            later = tuple(SPLICE_GROUPS[h][1] for h in order[order.index(g) + 1:]) + ("## RESP", "## Idle connections")
            at = next((i for i, ln in enumerate(old) if ln.startswith(later)), len(old))
            old = old[:at] + sec + old[at:]
        # The summary's goals table: this group's rows replaced where they were, or put in
        # before the rows of the groups after it.
        hdr = next((i for i, ln in enumerate(old) if ln.startswith("| cell | goal |")), None)
        if hdr is None:
            continue
        i = hdr + 2
        body = []
        while i < len(old) and old[i].startswith("|"):
            body.append(old[i])
            i += 1
        new_rows = goal_rows(gsumm, be, f"{name}-only run {meta.get('date', '?')[:16].replace('T', ' ')}Z"
                             + (", loaded machine" if busy > noise_max else ""))
        at = next((k for k, b in enumerate(body) if b.startswith(goal_prefix)), None)
        if at is None:
            later = tuple(SPLICE_GROUPS[h][2] for h in order[order.index(g) + 1:])
            at = next((k for k, b in enumerate(body) if later and b.startswith(later)), len(body))
        kept = [b for b in body if not b.startswith(goal_prefix)]
        at -= sum(1 for b in body[:at] if b.startswith(goal_prefix))
        body = kept[:at] + new_rows + kept[at:]
        old = old[:hdr + 2] + body + old[i:]
    if idle:
        old = splice_idle(old, meta, idle)
    with open(path, "w") as f:
        f.write("\n".join(old))


def splice_idle(old, meta, idle):
    """The idle cell alone: its section replaces "## Idle connections" (or goes in before the
    syscall section), prefaced by where it comes from, and its rows replace the goals table's
    "| idle, " rows (or go in before the syscall rows). This run has no echo_64B_c50 cell, so the
    "× alone" figures are "—" rather than a ratio against another run's."""
    be = (meta.get("backends") or "io_uring").split()[0]
    sec = idle_section(meta, idle, {}, no_ratio="—")
    run = (f"These figures come from a run of the idle cell alone (`SPLICE=1 "
           f"{'QUICK=1 ' if meta.get('quick') == '1' else ''}CELLS='{meta.get('cells')}' benchmarks/run.sh`), "
           f"{meta.get('date')}, commit {meta.get('commit')}, idle counts {meta.get('idle_n')}, backends "
           f"{meta.get('backends')}, {meta.get('dur')} s of load beside them, {meta.get('elapsed_s')} s in all, "
           f"load average at start {meta.get('loadavg_at_start')}. That run had no echo_64B_c50 cell, so the "
           "× alone column is — (no ratio against another run's figure). The rest of this file is from the full "
           "run described at the top.")
    sec = sec[:2] + [run, ""] + sec[2:]
    start = next((i for i, ln in enumerate(old) if ln.startswith("## Idle connections")), None)
    if start is not None:
        end = next((i for i in range(start + 1, len(old)) if old[i].startswith("## ")), len(old))
        old = old[:start] + sec + old[end:]
    else:
        later = ("## Syscalls per request", "## Micro benchmarks", "## Profile")
        at = next((i for i, ln in enumerate(old) if ln.startswith(later)), len(old))
        old = old[:at] + sec + old[at:]
    hdr = next((i for i, ln in enumerate(old) if ln.startswith("| cell | goal |")), None)
    if hdr is None:
        return old
    i = hdr + 2
    body = []
    while i < len(old) and old[i].startswith("|"):
        body.append(old[i])
        i += 1
    new_rows = idle_goal_rows(idle, {}, be, f"idle-only run {meta.get('date', '?')[:16].replace('T', ' ')}Z")
    at = next((k for k, b in enumerate(body) if b.startswith("| idle, ")), None)
    if at is None:
        at = next((k for k, b in enumerate(body) if b.startswith("| syscalls, ")), len(body))
    kept = [b for b in body if not b.startswith("| idle, ")]
    at -= sum(1 for b in body[:at] if b.startswith("| idle, "))
    return old[:hdr + 2] + kept[:at] + new_rows + kept[at:] + old[i:]


def write_plot(outdir, plot_path, cells, groups, summ, idle, order):
    """Clustered bar charts: per group, throughput and server µs/request per
    cell (x) and peer (bars); plus KiB per idle connection."""
    pdir = os.path.join(outdir, "plot")
    os.makedirs(pdir, exist_ok=True)
    panels = []
    group_order = []
    for c in cells:
        if groups[c] not in group_order:
            group_order.append(groups[c])
    for g in group_order:
        gcells = [c for c in cells if groups[c] == g]
        peers = [p for p in order if any(p in summ[c] for c in gcells)]
        for metric, ylabel in (("thr", "throughput /s (median)"), ("us", "server µs / request (median)")):
            fn = os.path.join(pdir, f"{g}_{metric}.dat")
            with open(fn, "w") as f:
                f.write("cell " + " ".join(peers) + "\n")
                for c in gcells:
                    vals = []
                    for p in peers:
                        s = summ[c].get(p)
                        v = s[metric][0] if s else None
                        vals.append("-" if v is None else f"{v:.6g}")
                    f.write(c + " " + " ".join(vals) + "\n")
            panels.append((fn, f"{g}: {ylabel}", len(peers)))
    idle = [r for r in idle if num(r.get("bytes_per_conn")) is not None]
    if idle:
        fn = os.path.join(pdir, "idle.dat")
        with open(fn, "w") as f:
            for r in idle:
                f.write(f"{r['peer']}@{r['conns']} {r['bytes_per_conn']}\n")
    if not panels and not idle:
        print("summarize.py: no load cells or idle cells in this run; no plot", file=sys.stderr)
        return False
    if not shutil.which("gnuplot"):
        print("summarize.py: gnuplot not found; no plot", file=sys.stderr)
        return False
    rows = (len(panels) + 1) // 2 + (1 if idle else 0)
    gp = [
        f"set terminal pngcairo size 1600,{420 * rows} font 'sans,10'",
        f"set output '{plot_path}'",
        f"set multiplot layout {rows},2",
        "set style data histograms",
        "set style histogram clustered gap 1",
        "set style fill solid 0.85 border -1",
        "set boxwidth 0.9",
        "set datafile missing '-'",
        "set key outside right top vertical",
        "set grid ytics",
        "set logscale y",
        "set xtics rotate by -20 noenhanced",
        "set key noenhanced",
    ]
    for fn, title, n in panels:
        gp.append(f"set title '{title}' noenhanced")
        gp.append(f"plot for [i=2:{n + 1}] '{fn}' using i:xtic(1) title columnheader(i)")
    if idle:
        gp.append("set title 'idle connections: server bytes per connection' noenhanced")
        gp.append("unset logscale y")
        gp.append("set style histogram clustered gap 1")
        gp.append(f"plot '{os.path.join(pdir, 'idle.dat')}' using 2:xtic(1) title 'bytes/conn'")
    gp.append("unset multiplot")
    script = os.path.join(pdir, "results.gp")
    with open(script, "w") as f:
        f.write("\n".join(gp) + "\n")
    r = subprocess.run(["gnuplot", script], capture_output=True, text=True)
    if r.returncode != 0:
        print("summarize.py: gnuplot failed:\n" + r.stderr, file=sys.stderr)
        return False
    return True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--results", required=True)
    ap.add_argument("--plot", required=True)
    ap.add_argument("--splice", action="store_true",
                    help="a run of the TLS or file cells or the idle cell only: replace those sections of "
                         "RESULTS.md and their goal rows, leave the rest and the plot")
    a = ap.parse_args()
    meta = read_meta(os.path.join(a.out, "meta.env"))
    raw = read_tsv(os.path.join(a.out, "raw.tsv"))
    idle = read_tsv(os.path.join(a.out, "idle.tsv"))
    skipped = []
    sk = os.path.join(a.out, "skipped.tsv")
    if os.path.exists(sk):
        with open(sk) as f:
            for line in f:
                parts = line.rstrip("\n").split("\t")
                if len(parts) == 3:
                    skipped.append({"group": parts[0], "peer": parts[1], "reason": parts[2]})
    syscalls = read_tsv(os.path.join(a.out, "syscalls.tsv"))
    micro = {}
    mj = os.path.join(a.out, "micro.json")
    if os.path.exists(mj):
        try:
            with open(mj) as f:
                micro = json.load(f)
        except ValueError as e:
            print(f"summarize.py: {mj}: {e}", file=sys.stderr)
    profile = ""
    pt = os.path.join(a.out, "profile.txt")
    if os.path.exists(pt):
        with open(pt) as f:
            profile = f.read()
    order = meta.get("peer_order", "").split()
    tls_info = []
    ti = os.path.join(a.out, "tls_info.tsv")
    if os.path.exists(ti):
        with open(ti) as f:
            tls_info = [line.rstrip("\n").split("\t") for line in f if line.strip()]
    cells, groups, summ = summarize(raw, order)
    if a.splice:
        extra = [name for name, there in (("syscalls", syscalls), ("micro", micro),
                                          ("profile", meta.get("profile") == "1")) if there]
        splice(a.results, meta, raw, cells, groups, summ, tls_info, idle, extra)
    else:
        write_plot(a.out, os.path.abspath(a.plot), cells, groups, summ, idle, order)
        write_markdown(a.results, meta, raw, cells, groups, summ, idle, skipped, os.path.basename(a.plot),
                       syscalls, micro, profile, tls_info)
    # A short version on stdout for the log.
    for cell in cells:
        for peer, s in summ[cell].items():
            print(f"{cell:22s} {peer:24s} thr={fmt(s['thr'][0]):>12s} us/req={fmt(s['us'][0]):>8s} "
                  f"p50={fmt(s['p50'])} p99={fmt(s['p99'])} load={fmt(s['load'])}% other={fmt(s['other'])}% "
                  f"errors={s['errors']}")
    for r in idle:
        print(f"idle {r['peer']:24s} conns={r['conns']} opened={r['opened']} B/conn={r['bytes_per_conn']} "
              f"fresh_echo_us={r['fresh_echo_us']} load={r['load_msgs_per_s']}/s {r['note']}")
    for r in syscalls:
        print(f"syscalls {r['workload']:22s} {r['backend']:9s} per_req={r['per_req']} strace={r['strace_per_req']} "
              f"top={r['top']}")


if __name__ == "__main__":
    main()
