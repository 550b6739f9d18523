"""``pilot-agent check rules`` and ``pilot-agent test rules``, shaped like promtool's.

Both take file paths and print what ``promtool check rules`` / ``promtool test
rules`` print, on the same streams: progress and SUCCESS on stdout, ``FAILED:``
and the problems on stderr. Exit status: 0 when every file is valid (every
test passed), 1 otherwise, 2 when no file was given.

>>> check_rules_main([])
2
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Sequence

from agent.rulefmt.loader import load_rule_file
from agent.rules.model import RuleGroup

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def _usage(command: str) -> int:
    print(f"pilot-agent {command}: at least one file is required", file=sys.stderr)
    return EXIT_USAGE


def duplicate_rules(groups: Sequence[RuleGroup]) -> list[tuple[str, tuple[tuple[str, str], ...]]]:
    """Rules of one file with the same name and labels (promtool's duplicate-rules lint)."""
    counts = Counter(
        (rule.name, tuple(sorted(rule.labels.items()))) for g in groups for rule in g.rules
    )
    return sorted(key for key, n in counts.items() if n > 1)


def _warn_duplicates(groups: Sequence[RuleGroup]) -> None:
    dups = duplicate_rules(groups)
    if not dups:
        return
    print(f"  WARNING: {len(dups)} duplicate rule(s) found.", file=sys.stderr)
    for name, labels in dups:
        print(f"Metric: {name}\nLabel(s):", file=sys.stderr)
        for k, v in labels:
            print(f"\t{k}: {v}", file=sys.stderr)
    print("Might cause inconsistency while recording expressions", file=sys.stderr)


def check_rules_main(argv: Sequence[str]) -> int:
    """Check each rule file like ``promtool check rules``; 0 when all are valid, else 1."""
    if not argv:
        return _usage("check rules")
    status = EXIT_OK
    for file in argv:
        print(f"Checking {file}")
        groups, problems = load_rule_file(file)
        if problems:
            print("  FAILED:", file=sys.stderr)
            for problem in problems:
                print(problem, file=sys.stderr)
            status = EXIT_FAILED
        else:
            print(f"  SUCCESS: {sum(len(g.rules) for g in groups)} rules found")
            _warn_duplicates(groups)
        print()
    return status


def test_rules_main(argv: Sequence[str]) -> int:
    """Run each rule test file like ``promtool test rules``; 0 when all pass, else 1."""
    from agent.rulefmt.unittest import run_test_file

    if not argv:
        return _usage("test rules")
    status = EXIT_OK
    for file in argv:
        print("Unit Testing: ", file)
        outcome = run_test_file(file)
        for warning in outcome.warnings:
            print(f"  WARNING: {warning}", file=sys.stderr)
        if outcome.errors:
            print("  FAILED:", file=sys.stderr)
            for error in outcome.errors:
                print(error, file=sys.stderr)
                print(file=sys.stderr)
            status = EXIT_FAILED
        else:
            print("  SUCCESS")
        print()
    return status
