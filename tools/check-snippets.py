#!/usr/bin/env python3
"""Checks that the code in README.md and docs/*.md is code that builds.

A fenced code block right after a line `<!-- from: PATH -->` must appear in
PATH, line for line and in order (indentation and blank lines aside), so the
tutorial never drifts from the examples that `bazel build` compiles. Run by
`make test`; exits 1 and names each stale block.
"""
import pathlib
import re
import sys

root = pathlib.Path(__file__).resolve().parent.parent
marker = re.compile(r"<!--\s*from:\s*(\S+)\s*-->")


def normalise(lines):
    return [l.strip() for l in lines if l.strip()]


def blocks(doc):
    lines = doc.read_text().splitlines()
    i = 0
    while i < len(lines):
        m = marker.search(lines[i])
        if m:
            j = i + 1
            while j < len(lines) and not lines[j].startswith("```"):
                j += 1
            k = j + 1
            while k < len(lines) and not lines[k].startswith("```"):
                k += 1
            yield i + 1, m.group(1), lines[j + 1:k]
            i = k
        i += 1


def contains(haystack, needle):
    n = len(needle)
    return any(haystack[i:i + n] == needle for i in range(len(haystack) - n + 1))


failures = checked = 0
for doc in [root / "README.md", *sorted((root / "docs").glob("*.md"))]:
    if not doc.exists():
        continue
    for line, path, code in blocks(doc):
        checked += 1
        source = root / path
        if not source.exists():
            print(f"{doc.name}:{line}: {path} does not exist")
            failures += 1
        elif not contains(normalise(source.read_text().splitlines()), normalise(code)):
            print(f"{doc.name}:{line}: this block is not (or no longer) in {path}")
            failures += 1
print(f"check-snippets: {checked} blocks checked, {failures} stale")
sys.exit(1 if failures else 0)
