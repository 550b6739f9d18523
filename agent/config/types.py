"""Value types of the configuration: durations, label names, regexes, secrets."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    SecretStr,
)

from agent.promql.regex import compile_go

# --------------------------------------------------------------------------- durations

_DURATION_RE = re.compile(r"^((\d+)y)?((\d+)w)?((\d+)d)?((\d+)h)?((\d+)m)?((\d+)s)?((\d+)ms)?$")
_UNIT_SECONDS = (365 * 86400, 7 * 86400, 86400, 3600, 60, 1, 0.001)


def parse_duration(value: object) -> float:
    """Parse a Prometheus duration (``1h30m``, ``500ms``) into seconds.

    >>> parse_duration("1m30s")
    90.0
    """
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 15s or 1m30s")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("duration must not be negative")
        return float(value)
    if not isinstance(value, str) or not value:
        raise ValueError("expected a duration such as 15s or 1m30s")
    m = _DURATION_RE.match(value)
    if m is None or value == "":
        raise ValueError(f"not a valid duration: {value!r} (use forms like 15s, 1m30s, 500ms)")
    groups = m.groups()[1::2]
    return float(sum(int(g) * u for g, u in zip(groups, _UNIT_SECONDS, strict=True) if g))


def format_duration(seconds: float) -> str:
    """Render seconds the way Prometheus prints durations.

    >>> format_duration(90)
    '1m30s'
    """
    ms = round(seconds * 1000)
    if ms == 0:
        return "0s"
    out = []
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms >= size:
            out.append(f"{ms // size}{unit}")
            ms %= size
    if ms:
        out.append(f"{ms}ms")
    return "".join(out)


Duration = Annotated[float, BeforeValidator(parse_duration)]


def _positive(seconds: float) -> float:
    if seconds <= 0:
        raise ValueError("must be positive")
    return seconds


PositiveDuration = Annotated[float, BeforeValidator(parse_duration), AfterValidator(_positive)]
"""A duration that must be more than zero."""

_LABEL_NAME_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
CHECK_NAME_RE = re.compile(r"^[a-zA-Z0-9_][a-zA-Z0-9_.:-]*$")
RESERVED_LABELS = frozenset({"check", "job", "instance", "step", "phase", "__name__"})


def _label_name(v: str) -> str:
    if not _LABEL_NAME_RE.match(v) or v.startswith("__"):
        raise ValueError(f"invalid label name {v!r}")
    return v


LabelName = Annotated[str, BeforeValidator(_label_name)]


def _compile_regex(v: str) -> str:
    """Regexes in the configuration are RE2 (Go) syntax, as in Prometheus's files."""
    try:
        compile_go(v)
    except (re.error, ValueError) as exc:
        raise ValueError(f"invalid regular expression {v!r}: {exc}") from None
    return v


Regex = Annotated[str, BeforeValidator(_compile_regex)]


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


def read_secret_file(path: str) -> SecretStr:
    try:
        return SecretStr(Path(path).read_text().strip())
    except OSError as exc:
        raise ValueError(f"cannot read secret file {path!r}: {exc.strerror}") from None


def secret_or_file(value: SecretStr | None, file: str | None, name: str) -> SecretStr | None:
    if value is not None and file is not None:
        raise ValueError(f"at most one of {name} and {name}_file may be set")
    if file is not None:
        return read_secret_file(file)
    return value


def host_port(v: str) -> str:
    host, sep, port = v.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected host:port, got {v!r}")
    return v


HostPort = Annotated[str, BeforeValidator(host_port)]


def listen_address(v: str) -> str:
    _host, sep, port = v.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f"expected [host]:port, got {v!r}")
    return v
