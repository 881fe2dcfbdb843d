#!/usr/bin/env python3
"""Keeps the `make run` landing page (docs/index.html) in step with its sources.

docs/ is what examples/http_server serves, and it serves nothing outside it, so the page's
borrowed parts live there as copies, refreshed by this script:
  - docs/bench/RESULTS.md and docs/bench/results.png: copies of benchmarks/RESULTS.md and
    benchmarks/results.png (the latest `make bench`);
  - the regions of docs/index.html between `<!-- sync: NAME -->` and `<!-- /sync: NAME -->`:
    "start" is README.md's first ```sh block (the two commands), "goals" is the goals table
    of benchmarks/RESULTS.md's summary, as HTML, with the line saying which run it is from.

`python3 tools/sync-docs.py` rewrites what is stale (`make bench` runs it);
`python3 tools/sync-docs.py --check` changes nothing and exits 1 naming each stale part
(`make check-docs`, a step of `make test`).
"""
import html
import pathlib
import re
import sys

root = pathlib.Path(__file__).resolve().parent.parent
page = root / "docs" / "index.html"
copies = {
    root / "benchmarks" / "RESULTS.md": root / "docs" / "bench" / "RESULTS.md",
    root / "benchmarks" / "results.png": root / "docs" / "bench" / "results.png",
}


def inline(text):
    """Markdown's **bold** and `code` in a table cell, as HTML."""
    out = html.escape(text, quote=False)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", out)


def start_block():
    readme = (root / "README.md").read_text()
    m = re.search(r"^```sh\n(.*?)^```", readme, re.S | re.M)
    if not m:
        sys.exit("sync-docs: README.md has no ```sh block (the two commands)")
    return f"<pre><code>{html.escape(m.group(1).rstrip(), quote=False)}</code></pre>"


def goals_table():
    lines = (root / "benchmarks" / "RESULTS.md").read_text().splitlines()
    machine = next((l for l in lines if l.startswith("Machine:")), "")
    try:
        top = lines.index("## Summary: goals and where coronet loses")
    except ValueError:
        sys.exit("sync-docs: benchmarks/RESULTS.md has no '## Summary: goals ...' section")
    i = top
    while i < len(lines) and not lines[i].startswith("|"):
        i += 1
    rows = []
    while i < len(lines) and lines[i].startswith("|"):
        rows.append([c.strip() for c in lines[i].strip().strip("|").split("|")])
        i += 1
    if len(rows) < 3:
        sys.exit("sync-docs: the goals table in benchmarks/RESULTS.md is missing or empty")
    head, align, body = rows[0], rows[1], rows[2:]
    right = [a.endswith(":") for a in align]

    def cell(tag, text, k):
        style = ' class="num"' if right[k] else ""
        return f"<{tag}{style}>{inline(text)}</{tag}>"

    out = [f"<p class=\"run\">{inline(machine)}</p>", "<table>"]
    out.append("<tr>" + "".join(cell("th", h, k) for k, h in enumerate(head)) + "</tr>")
    for r in body:
        out.append("<tr>" + "".join(cell("td", c, k) for k, c in enumerate(r)) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def synced(text, name, body):
    pattern = re.compile(rf"(<!-- sync: {name} -->\n).*?(<!-- /sync: {name} -->)", re.S)
    if not pattern.search(text):
        sys.exit(f"sync-docs: docs/index.html has no <!-- sync: {name} --> region")
    return pattern.sub(lambda m: m.group(1) + body + "\n" + m.group(2), text)


def main():
    check = sys.argv[1:] == ["--check"]
    stale = []
    for src, dst in copies.items():
        if not dst.exists() or dst.read_bytes() != src.read_bytes():
            stale.append(f"{dst.relative_to(root)} is not a copy of {src.relative_to(root)}")
            if not check:
                dst.parent.mkdir(parents=True, exist_ok=True)
                dst.write_bytes(src.read_bytes())
    text = page.read_text()
    new = synced(synced(text, "start", start_block()), "goals", goals_table())
    if new != text:
        stale.append("docs/index.html: the start commands (README.md) or the goals table "
                     "(benchmarks/RESULTS.md) differ")
        if not check:
            page.write_text(new)
    for s in stale:
        print(f"sync-docs: {'stale' if check else 'updated'}: {s}")
    if check and stale:
        print("sync-docs: run `python3 tools/sync-docs.py` and commit docs/")
        return 1
    if check:
        print("sync-docs: docs/ is in step with README.md and benchmarks/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
