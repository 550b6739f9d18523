"""Prometheus's relabelling (``relabel_configs``, ``metric_relabel_configs``).

Each step reads its ``source_labels`` joined with ``separator`` and acts on the
label set; a ``keep``/``drop`` (or ``keepequal``/``dropequal``) that rejects the
set drops it, and :func:`relabel` returns None. Regexes are RE2 syntax, fully
anchored and with ``.`` matching newlines (``^(?s:regex)$``, as Prometheus 3);
each distinct regex is translated and compiled once. ``replacement`` and a
``replace`` target label expand ``$1``, ``${1}``, ``$name`` and ``${name}`` like
Go's ``Regexp.Expand``. Setting a label to the empty string removes it.

``hashmod`` is Prometheus's: the MD5 of the joined value, its *last* 8 bytes read
big-endian (the same result as older releases' ``sum64``), modulo ``modulus``.

>>> from agent.config import RelabelConfig
>>> step = RelabelConfig(source_labels=["a"], regex="f(.*)", target_label="d",
...                      replacement="ch${1}-ch${1}")
>>> relabel({"a": "foo"}, [step])
{'a': 'foo', 'd': 'choo-choo'}
>>> relabel({"a": "foo"}, [RelabelConfig(source_labels=["a"], regex="f.*", action="drop")])
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Callable, Mapping, Sequence

from agent.config import RelabelConfig
from agent.promql.labelfuncs import expand_template
from agent.promql.regex import go_regex
from agent.tsdb.base import Labels

_Step = Callable[[dict[str, str], RelabelConfig, str], bool]


@functools.lru_cache(maxsize=1024)
def compile_regex(regex: str) -> re.Pattern[str]:
    """The anchored Python pattern for a relabel ``regex`` (use with ``fullmatch``)."""
    return re.compile(f"(?s:{go_regex(regex)})")


def hashmod(value: str, modulus: int) -> int:
    """Prometheus's ``hashmod``: last 8 bytes of MD5, big-endian, modulo ``modulus``.

    >>> hashmod("baz", 1000)
    976
    """
    digest = hashlib.md5(value.encode("utf-8"), usedforsecurity=False).digest()
    return int.from_bytes(digest[8:], "big") % modulus


def relabel(labels: Mapping[str, str], configs: Sequence[RelabelConfig]) -> dict[str, str] | None:
    """Apply ``configs`` in order; the resulting labels, or None when the set is dropped."""
    out = {k: v for k, v in labels.items() if v != ""}
    for cfg in configs:
        value = cfg.separator.join(out.get(name, "") for name in cfg.source_labels)
        if not _ACTIONS[cfg.action](out, cfg, value):
            return None
    return out


def merge_target_labels(exposed: Labels, target: Labels, honor: bool) -> dict[str, str]:
    """A sample's labels with the target's, as Prometheus's ``mutateSampleLabels``.

    >>> merge_target_labels((("job", "x"),), (("job", "api"),), honor=False)
    {'job': 'api', 'exported_job': 'x'}
    """
    out = {k: v for k, v in exposed if v != ""}
    if honor:
        for name, value in target:
            out.setdefault(name, value)
        return out
    clashes = [(name, out[name]) for name, _ in target if name in out]
    out.update(target)
    for name, value in sorted(clashes, key=lambda kv: len(kv[0])):
        new = f"exported_{name}"
        while new in out:
            new = f"exported_{new}"
        out[new] = value
    return out


def _set(labels: dict[str, str], name: str, value: str) -> None:
    if value == "":
        labels.pop(name, None)
    else:
        labels[name] = value


def _keep(labels: dict[str, str], cfg: RelabelConfig, value: str) -> bool:
    return compile_regex(cfg.regex).fullmatch(value) is not None


def _drop(labels: dict[str, str], cfg: RelabelConfig, value: str) -> bool:
    return compile_regex(cfg.regex).fullmatch(value) is None


def _keepequal(labels: dict[str, str], cfg: RelabelConfig, value: str) -> bool:
    return labels.get(cfg.target_label or "", "") == value


def _dropequal(labels: dict[str, str], cfg: RelabelConfig, value: str) -> bool:
    return labels.get(cfg.target_label or "", "") != value


def _replace(labels: dict[str, str], cfg: RelabelConfig, value: str) -> bool:
    match = compile_regex(cfg.regex).fullmatch(value)
    if match is None:
        return True  # no match, no replacement
    target = expand_template(cfg.target_label or "", match)
    if target == "":
        return True  # an invalid (empty) target label name: nothing is written
    _set(labels, target, expand_template(cfg.replacement, match))
    return True


def _lowercase(labels: dict[str, str], cfg: RelabelConfig, value: str) -> bool:
    _set(labels, cfg.target_label or "", value.lower())
    return True


def _uppercase(labels: dict[str, str], cfg: RelabelConfig, value: str) -> bool:
    _set(labels, cfg.target_label or "", value.upper())
    return True


def _hashmod(labels: dict[str, str], cfg: RelabelConfig, value: str) -> bool:
    assert cfg.modulus is not None  # the config model requires it for hashmod
    _set(labels, cfg.target_label or "", str(hashmod(value, cfg.modulus)))
    return True


def _labelmap(labels: dict[str, str], cfg: RelabelConfig, value: str) -> bool:
    pattern = compile_regex(cfg.regex)
    for name, label_value in list(labels.items()):
        match = pattern.fullmatch(name)
        if match is not None:
            new_name = expand_template(cfg.replacement, match)
            if new_name:
                labels[new_name] = label_value
    return True


def _labeldrop(labels: dict[str, str], cfg: RelabelConfig, value: str) -> bool:
    pattern = compile_regex(cfg.regex)
    for name in [n for n in labels if pattern.fullmatch(n) is not None]:
        del labels[name]
    return True


def _labelkeep(labels: dict[str, str], cfg: RelabelConfig, value: str) -> bool:
    pattern = compile_regex(cfg.regex)
    for name in [n for n in labels if pattern.fullmatch(n) is None]:
        del labels[name]
    return True


_ACTIONS: dict[str, _Step] = {
    "replace": _replace,
    "keep": _keep,
    "drop": _drop,
    "keepequal": _keepequal,
    "dropequal": _dropequal,
    "lowercase": _lowercase,
    "uppercase": _uppercase,
    "hashmod": _hashmod,
    "labelmap": _labelmap,
    "labeldrop": _labeldrop,
    "labelkeep": _labelkeep,
}
