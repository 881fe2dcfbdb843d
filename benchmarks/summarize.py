#!/usr/bin/env python3
"""summarize.py: turns a run.sh output directory into RESULTS.md and a plot.

    summarize.py --out benchmarks/out/STAMP --results benchmarks/RESULTS.md \
                 --plot benchmarks/results.png

Reads OUT/raw.tsv (one line per load run), OUT/idle.tsv, OUT/skipped.tsv and
OUT/meta.env, all written by run.sh. Per cell and peer it reports the median
and the spread (min-max) over the runs; ratios are medians over the median of
the group's reference peer (meta: reference_<group>). The plot is drawn by
gnuplot (skipped, with a note, when gnuplot is missing).
"""
import argparse
import csv
import os
import shutil
import statistics
import subprocess
import sys

GROUP_TITLES = {
    "echo": "Echo (echo_load; throughput in messages/s)",
    "http": "HTTP GET /hello (wrk, h2load; throughput in requests/s)",
    "resp": "RESP (redis-benchmark -t set,get -c 50 -d 16; throughput in requests/s)",
}
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
    "resp_c50_P1": "redis-benchmark -t set,get -c 50 -d 16 -P 1 (p50/p99: the worse of SET and GET)",
    "resp_c50_P16": "redis-benchmark -t set,get -c 50 -d 16 -P 16 (p50/p99: the worse of SET and GET)",
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


def write_markdown(path, meta, raw, cells, groups, summ, idle, skipped, plot_name):
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
        "the server process tree (/proc/PID/stat, clock ticks) × 10⁶ / CLK_TCK / requests; load CPU % is the load "
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

    current_group = None
    for cell in cells:
        g = groups[cell]
        ref = meta.get(f"reference_{g}")
        if g != current_group:
            lines.append(f"## {GROUP_TITLES.get(g, g)}")
            lines.append("")
            lines.append(f"Reference peer for the ratios: `{ref}`.")
            lines.append("")
            current_group = g
        lines.append(f"### {cell}")
        lines.append("")
        if cell in CELL_NOTES:
            lines.append(f"`{CELL_NOTES[cell]}`")
            lines.append("")
        lines.append("| peer | throughput /s | p50 µs | p99 µs | server µs/req | load CPU % | other CPU % "
                     "| thr × ref | µs/req × ref | errors |")
        lines.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        rs = summ[cell].get(ref)
        for peer, s in summ[cell].items():
            if s["failed"] and s["runs"] == 0:
                lines.append(f"| {peer} | failed ({', '.join(sorted(set(s['failed'])))}) | | | | | | | | |")
                continue
            tr = ratio(s["thr"][0], rs["thr"][0]) if rs else None
            ur = ratio(s["us"][0], rs["us"][0]) if rs else None
            lines.append(
                f"| {peer} | {spread(*s['thr'])} | {fmt(s['p50'])} | {fmt(s['p99'])} | {spread(*s['us'])} | "
                f"{fmt(s['load'])} | {fmt(s['other'])}{noisy(s)} | {fmt(tr, 2) if tr else '-'} | "
                f"{fmt(ur, 2) if ur else '-'} | {s['errors']} |")
        lines.append("")

    if idle:
        ref = meta.get("reference_echo")
        refrow = next((r for r in idle if r["peer"] == ref), None)
        lines.append("## Idle connections")
        lines.append("")
        lines.append(
            f"`idle_conns --connections {meta.get('idle_n')} --ping` over source addresses 127.0.0.1–4: the "
            "echo server's RSS (VmRSS of its process tree) before and while the connections are held; each "
            "connection echoed one byte first, so the server has accepted and served it.")
        lines.append("")
        lines.append("| peer | opened | alive | RSS before KiB | RSS with conns KiB | KiB per conn | × ref | setup s |")
        lines.append("|---|---:|---:|---:|---:|---:|---:|---:|")
        for r in idle:
            k = num(r["kib_per_conn"])
            kr = ratio(k, num(refrow["kib_per_conn"])) if refrow else None
            lines.append(
                f"| {r['peer']} | {r['opened']} | {r['alive']} | {r['rss_before_kb']} | {r['rss_with_conns_kb']} | "
                f"{fmt(k)} | {fmt(kr, 2) if kr else '-'} | {r['setup_secs']} |")
        lines.append("")

    with open(path, "w") as f:
        f.write("\n".join(lines))


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
    if idle:
        fn = os.path.join(pdir, "idle.dat")
        with open(fn, "w") as f:
            for r in idle:
                f.write(f"{r['peer']} {r['kib_per_conn'] if num(r['kib_per_conn']) is not None else '-'}\n")
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
        gp.append("set title 'idle connections: server KiB per connection' noenhanced")
        gp.append("unset logscale y")
        gp.append("set style histogram clustered gap 1")
        gp.append(f"plot '{os.path.join(pdir, 'idle.dat')}' using 2:xtic(1) title 'KiB/conn'")
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
    order = meta.get("peer_order", "").split()
    cells, groups, summ = summarize(raw, order)
    write_plot(a.out, os.path.abspath(a.plot), cells, groups, summ, idle, order)
    write_markdown(a.results, meta, raw, cells, groups, summ, idle, skipped, os.path.basename(a.plot))
    # A short version on stdout for the log.
    for cell in cells:
        for peer, s in summ[cell].items():
            print(f"{cell:22s} {peer:24s} thr={fmt(s['thr'][0]):>12s} us/req={fmt(s['us'][0]):>8s} "
                  f"p50={fmt(s['p50'])} p99={fmt(s['p99'])} load={fmt(s['load'])}% other={fmt(s['other'])}% "
                  f"errors={s['errors']}")
    for r in idle:
        print(f"idle {r['peer']:24s} opened={r['opened']} KiB/conn={r['kib_per_conn']}")


if __name__ == "__main__":
    main()
