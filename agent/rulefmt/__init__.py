"""Prometheus rule files at the edge: loading and checking them, and promtool-style rule tests.

:mod:`agent.rulefmt.loader` turns rule files into :class:`~agent.rules.model.RuleGroup`
values (every problem located by file, path and line); :mod:`agent.rulefmt.unittest`
runs ``promtool test rules`` files; :mod:`agent.rulefmt.cli` holds the two commands.
"""

from agent.rulefmt.loader import load_rule_files, parse_rule_text

__all__ = ["load_rule_files", "parse_rule_text"]
