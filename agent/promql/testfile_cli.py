"""The command line of ``pilot-agent promqltest``: options, the report and the floor.

:func:`agent.promql.testfile.main` parses the options with :func:`arg_parser`, runs
the files and hands the results to :func:`report`, which prints per-file counts,
failures, skip reasons and notes (or JSON with ``--json``) and returns the exit
status. ``--write-floor PATH`` records each file's passing count for the
conformance test, which then fails if a file passes fewer evals than recorded.

>>> args = arg_parser().parse_args(["--json", "a.test"])
>>> args.files, args.json, args.max_failures
(['a.test'], True, 20)
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

from agent.promql.testfile_result import FileResult


def arg_parser() -> argparse.ArgumentParser:
    """The options of ``pilot-agent promqltest``."""
    p = argparse.ArgumentParser(
        prog="pilot-agent promqltest",
        description="Run Prometheus PromQL test scripts (.test files) against the engine.",
    )
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--verbose", "-v", action="store_true", help="list every failure and note")
    p.add_argument("--json", action="store_true", help="print per-file counts as JSON")
    p.add_argument("--write-floor", metavar="PATH", help="record passing counts per file in PATH")
    p.add_argument("--max-failures", type=int, default=20, help=argparse.SUPPRESS)
    return p


def _indent(label: str, text: str) -> str:
    pad = " " * (6 + len(label))
    return f"    {label}: " + text.replace("\n", "\n" + pad)


def print_report(results: list[FileResult], verbose: bool, limit: int) -> None:
    """Per-file counts, then failures (``limit`` unless verbose), skip reasons, notes, totals."""
    for r in results:
        print(f"{r.name}: {r.summary()}")
    failures = [(r.name, s) for r in results for s in r.statements if s.outcome == "failed"]
    shown = failures if verbose else failures[:limit]
    if shown:
        print(f"\nFailures (showing {len(shown)} of {len(failures)}):")
    for name, s in shown:
        print(f"{name}:{s.line}: {s.kind} {s.expr}")
        print(_indent("error", s.message))
        if s.expected or s.actual:
            print(_indent("expected", s.expected))
            print(_indent("actual", s.actual))
    reasons = Counter(s.category for r in results for s in r.statements if s.outcome == "skipped")
    if reasons:
        print("\nSkipped, by reason:")
        for reason, n in reasons.most_common():
            print(f"  {n:6d}  {reason}")
    notes = [f"{r.name}: {note}" for r in results for note in r.notes]
    if notes:
        print(f"\nNotes: {len(notes)}" + ("" if verbose else " (--verbose lists them)"))
        for note in notes if verbose else []:
            print(f"  {note}")
    total = FileResult("total", tuple(s for r in results for s in r.statements))
    print(("\n" if len(results) > 1 or shown or reasons else "") + total.summary())


def json_report(results: list[FileResult]) -> str:
    """Per-file counts, skip reasons and failures, with the totals, as JSON."""
    files = []
    for r in results:
        skipped = Counter(s.category for s in r.statements if s.outcome == "skipped")
        failures = [
            {"line": s.line, "expr": s.expr, "message": s.message}
            for s in r.statements
            if s.outcome == "failed"
        ]
        files.append(
            {
                "file": r.name,
                "passed": r.passed,
                "failed": r.failed,
                "skipped": r.skipped,
                "skip_reasons": dict(skipped),
                "failures": failures,
            }
        )
    totals = {k: sum(int(f[k]) for f in files) for k in ("passed", "failed", "skipped")}  # type: ignore[call-overload]
    return json.dumps({"files": files, **totals}, indent=2)


def write_floor(path: str | Path, results: list[FileResult]) -> dict[str, int]:
    """Merge each file's passing count into the JSON floor at ``path`` (keyed by file name)."""
    target = Path(path)
    floor: dict[str, int] = json.loads(target.read_text()) if target.exists() else {}
    floor.update({Path(r.name).name: r.passed for r in results})
    target.write_text(json.dumps(dict(sorted(floor.items())), indent=2) + "\n")
    return floor


def report(results: list[FileResult], args: argparse.Namespace) -> int:
    """Print the report and write the floor if asked; the exit status of the command."""
    if args.json:
        print(json_report(results))
    else:
        print_report(results, args.verbose, args.max_failures)
    if args.write_floor:
        write_floor(args.write_floor, results)
        print(f"floor written to {args.write_floor}", file=sys.stderr)
        return 0
    return 1 if any(r.failed for r in results) else 0
