#!/usr/bin/env python3
"""Checks that Bazel and CMake build the same files: one list of sources, two builds.

Bazel's side is read from the BUILD files themselves (evaluated as Python with stand-ins for
Bazel's functions): every file in the srcs and hdrs of the cc_library, cc_binary and cc_test
rules of lib/, coro/, proto/, the root package (coronet.hpp), examples/, tests/lib/, tests/coro/
and tests/proto/, and the .cpp files of tests/support/.
CMake's side is every file named in cmake/sources.cmake, by the set() it is in. The check
also looks at the disk: a .cpp or .hpp in those folders that neither build lists, or a listed
file that does not exist, is an error too.

Each problem is one line saying which file is missing from which build and the line to add
where. Run by `make check-build-lists` (a step of `make test`); exits 1 on any problem.
Usage: tools/check-build-lists.py [--root DIR]
"""
import pathlib
import re
import sys

root = pathlib.Path(__file__).resolve().parent.parent
if sys.argv[1:2] == ["--root"]:
    root = pathlib.Path(sys.argv[2]).resolve()

# Bazel package -> the folders it covers on disk ("" is the root: coronet.hpp only).
PACKAGES = ["lib", "coro", "proto", "", "examples", "tests/lib", "tests/coro", "tests/proto",
            "tests/support"]
# Packages whose headers only Bazel lists (CMake adds the folder to the include path): their
# .cpp files are compared.
SOURCES_ONLY = {"tests/support"}
SOURCE = re.compile(r"\.(cpp|cc|hpp|h)$")


def bazel_files(package):
    """{path: 'cc_library NAME'} for the files of one BUILD.bazel's C++ rules."""
    build = root / package / "BUILD.bazel"
    files = {}
    if not build.is_file():  # a tree without this package (tests/support is optional)
        return files

    def rule(kind):
        def record(name="", srcs=(), hdrs=(), **_):
            for f in list(srcs) + list(hdrs):
                if isinstance(f, str) and not f.startswith((":", "//", "@")):
                    if package in SOURCES_ONLY and not f.endswith(".cpp"):
                        continue
                    files[str(pathlib.PurePosixPath(package, f))] = f"{kind} {name}"
        return record

    def glob(include, exclude=(), **_):
        base = root / package
        found = {str(p.relative_to(base)) for pat in include for p in base.glob(pat) if p.is_file()}
        return sorted(found - {str(p.relative_to(base)) for pat in exclude for p in base.glob(pat)})

    class Stub:  # load()ed constants (CORONET_COPTS + [...]) and rules this check ignores
        def __call__(self, *a, **k):
            return self

        def __add__(self, other):
            return self

        __radd__ = __add__

    class Names(dict):
        def __missing__(self, key):
            return Stub()

    names = Names(cc_library=rule("cc_library"), cc_binary=rule("cc_binary"),
                  cc_test=rule("cc_test"), glob=glob, select=lambda d: [])
    exec(compile(build.read_text(), str(build), "exec"), {"__builtins__": {}}, names)
    return files


def cmake_files():
    """{path: 'VARIABLE'} for every file cmake/sources.cmake names."""
    text = (root / "cmake" / "sources.cmake").read_text()
    files = {}
    for m in re.finditer(r"set\(\s*(\w+)(.*?)\)", re.sub(r"#[^\n]*", "", text), re.S):
        for token in m.group(2).replace('"', " ").split():
            if SOURCE.search(token):
                files[token] = m.group(1)
    return files


def cmake_home(path, bazel_rule=""):
    """Where a file belongs in cmake/sources.cmake, as advice."""
    folder, name = path.rpartition("/")[0], path.rpartition("/")[2]
    header = name.endswith((".hpp", ".h"))
    if folder in ("lib", "coro", "proto"):
        var = f"CORONET_{folder.upper()}_{'HEADERS' if header else 'SOURCES'}"
        return f"add the line `    {path}` to {var}"
    if folder == "":
        return f"add the line `    {path}` to CORONET_TOP_HEADERS"
    if folder == "examples":
        if header:
            return f"add the line `    {path}` to CORONET_EXAMPLE_HEADERS"
        if bazel_rule.startswith("cc_binary"):
            prog = bazel_rule.split()[1]
            if re.search(rf'"{prog}\s', (root / "cmake" / "sources.cmake").read_text()):
                return f"add `{path}` to the \"{prog} ...\" line of CORONET_EXAMPLES"
            return f"add the line `    \"{prog} {path}\"` to CORONET_EXAMPLES (a new program)"
        return f"add `{path}` to the CORONET_EXAMPLES line of each program that uses {bazel_rule}"
    if folder in SOURCES_ONLY:
        return f"add the line `    {path}` to CORONET_TEST_SUPPORT_SOURCES"
    return f"add the line `    {path}` to CORONET_TESTS"


def main():
    bazel = {}
    for package in PACKAGES:
        for path, rule in bazel_files(package).items():
            bazel[path] = (rule, package)
    cmake = cmake_files()
    problems = []

    for path, (rule, package) in sorted(bazel.items()):
        if path not in cmake:
            problems.append(f"{path} is in {package or '.'}/BUILD.bazel ({rule}) but not in the "
                            f"CMake build: {cmake_home(path, rule)} in cmake/sources.cmake")
    scopes = {p for p in PACKAGES}
    for path, var in sorted(cmake.items()):
        folder = path.rpartition("/")[0]
        if path not in bazel and folder in scopes:
            problems.append(f"{path} is in cmake/sources.cmake ({var}) but in no rule of "
                            f"{folder or '.'}/BUILD.bazel: add it to the cc_library (or cc_binary, "
                            f"cc_test) it belongs to there, or remove it from {var}")
        elif folder not in scopes:
            problems.append(f"{path} is in cmake/sources.cmake ({var}), outside the folders "
                            f"this check compares ({', '.join(p or '.' for p in PACKAGES)})")
    for path in sorted(set(bazel) | set(cmake)):
        if not (root / path).is_file():
            problems.append(f"{path} is listed but does not exist")

    # Files on disk that neither build lists (tests: only *_test.cpp; helpers live elsewhere).
    for package in PACKAGES:
        base = root / package
        for p in sorted(base.glob("*")):
            rel = str(p.relative_to(root))
            if not p.is_file() or not SOURCE.search(rel) or rel in bazel or rel in cmake:
                continue
            if package in SOURCES_ONLY:
                if not rel.endswith(".cpp"):
                    continue
            elif package.startswith("tests/") and not rel.endswith("_test.cpp"):
                continue
            problems.append(f"{rel} is in neither build: add it to {package or '.'}/BUILD.bazel "
                            f"and {cmake_home(rel)} in cmake/sources.cmake")

    for p in problems:
        print(f"check-build-lists: {p}")
    print(f"check-build-lists: {len(bazel)} files in the Bazel rules, {len(cmake)} in "
          f"cmake/sources.cmake, {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
