#!/usr/bin/env python
r"""The benchmarks, one entry point: `python scripts/benchmark.py BENCHMARK [OPTIONS]`.

    python scripts/benchmark.py                          # the benchmarks, one line each
    python scripts/benchmark.py BENCHMARK --help         # one benchmark's options and what it writes
    python scripts/benchmark.py methods --data-dir ../shared/data/fox --data-factor 8 --max-steps 3000
    python scripts/benchmark.py render --compare

Each benchmark is a module of scripts/bench/ holding only what is its own (options, runs, tables); what they
share (the scene / steps / device / output options, TrainConfig, reusing a finished run unless --rerun,
`gspruner` subprocesses, the table and JSON files) is scripts/bench/common.py. Options with no benchmark
name before them are `methods`' (`python scripts/benchmark.py --data-dir D --methods ...`, the form from
before the sub-benchmarks).
"""

from __future__ import annotations

import ast
import importlib
import sys
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent
if str(SCRIPTS) not in sys.path:  # run as a script it is there already; imported by a test it is not
    sys.path.insert(0, str(SCRIPTS))

BENCHMARKS = ("methods", "render", "roofline", "export", "pruning", "lp3dgs", "distributed", "process", "spread")
BARE = "methods"  # what options without a benchmark name run


def load(name: str):
    """The module of benchmark `name` (scripts/bench/<name>.py); its main(argv) returns the exit status."""
    return importlib.import_module(f"bench.{name}")


def summary(name: str) -> str:
    """The first line of a benchmark's docstring, read without importing it (torch, the trainer)."""
    doc = ast.get_docstring(ast.parse((SCRIPTS / "bench" / f"{name}.py").read_text())) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def usage() -> str:
    width = max(map(len, BENCHMARKS))
    lines = ["usage: benchmark.py BENCHMARK [OPTIONS]   (BENCHMARK --help: its options)", "", "benchmarks:"]
    lines += [f"  {name:<{width}}  {summary(name)}" for name in BENCHMARKS]
    lines += ["", f"Options without a benchmark name go to `{BARE}`."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage(), file=sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    name, rest = (BARE, argv) if argv[0].startswith("-") else (argv[0], argv[1:])
    if name not in BENCHMARKS:
        print(f"error: no benchmark {name!r}; choose from {', '.join(BENCHMARKS)}", file=sys.stderr)
        return 2
    return load(name).main(rest) or 0


if __name__ == "__main__":
    sys.exit(main())
