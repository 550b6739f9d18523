"""Loading everything a configuration file names: the file itself and its rule files.

Rule files are resolved relative to the configuration file's directory, globs
allowed, as Prometheus resolves ``rule_files``. Any problem in either raises one
:class:`~agent.errors.ConfigError` listing them all, located.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from agent.config import AgentConfig, load_config
from agent.rulefmt.loader import load_rule_files
from agent.rules.model import RuleGroup


@dataclass(frozen=True, slots=True)
class Loaded:
    """A validated configuration and the rule groups of its rule files."""

    config: AgentConfig
    rule_groups: tuple[RuleGroup, ...] = ()


def load_all(path: str | Path, env: Mapping[str, str] | None = None) -> Loaded:
    """Load the configuration file and every rule file it names."""
    config = load_config(path, env)
    groups = load_rule_files(config.rule_files, base_dir=Path(path).parent)
    return Loaded(config, tuple(groups))
