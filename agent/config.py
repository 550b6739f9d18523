"""Configuration: the only place where YAML becomes objects.

The file is shaped like Prometheus's configuration where the two overlap
(``global``, durations such as ``15s`` or ``1m30s``, ``*_file`` secrets).
Loading collects *every* problem, each with its path (``checks[2].http.url``)
and YAML line, and raises one :class:`~agent.errors.ConfigError` carrying them all.

>>> cfg = parse_config("checks: [{name: api, http: {url: 'http://x/'}}]", "inline.yml")
>>> cfg.checks[0].timeout < cfg.checks[0].interval
True
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, Self

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from agent.errors import ConfigError, ConfigProblem
from agent.model import CHECK_KINDS

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

_LABEL_NAME_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_CHECK_NAME_RE = re.compile(r"^[a-zA-Z0-9_][a-zA-Z0-9_.:-]*$")
_RESERVED_LABELS = frozenset({"check", "job", "instance", "step", "phase", "__name__"})


def _label_name(v: str) -> str:
    if not _LABEL_NAME_RE.match(v) or v.startswith("__"):
        raise ValueError(f"invalid label name {v!r}")
    return v


LabelName = Annotated[str, BeforeValidator(_label_name)]


def _compile_regex(v: str) -> str:
    try:
        re.compile(v)
    except re.error as exc:
        raise ValueError(f"invalid regular expression {v!r}: {exc}") from None
    return v


Regex = Annotated[str, BeforeValidator(_compile_regex)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _read_secret_file(path: str) -> SecretStr:
    try:
        return SecretStr(Path(path).read_text().strip())
    except OSError as exc:
        raise ValueError(f"cannot read secret file {path!r}: {exc.strerror}") from None


def _secret_or_file(value: SecretStr | None, file: str | None, name: str) -> SecretStr | None:
    if value is not None and file is not None:
        raise ValueError(f"at most one of {name} and {name}_file may be set")
    if file is not None:
        return _read_secret_file(file)
    return value


# --------------------------------------------------------------------------- check kinds


class TLSConfig(_Model):
    """Client-side TLS settings, as Prometheus's ``tls_config``."""

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    server_name: str | None = None
    insecure_skip_verify: bool = False

    @model_validator(mode="after")
    def _pair(self) -> Self:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file must be set together")
        return self


class BasicAuth(_Model):
    username: str
    password: SecretStr | None = None
    password_file: str | None = None

    @model_validator(mode="after")
    def _resolve(self) -> Self:
        object.__setattr__(
            self, "password", _secret_or_file(self.password, self.password_file, "password")
        )
        return self


class HttpExpect(_Model):
    """Assertions on an HTTP answer. An empty ``status`` list means any 2xx."""

    status: list[Annotated[int, Field(ge=100, le=599)]] = Field(default_factory=list)
    body_regex: Regex | None = None
    body_not_regex: Regex | None = None
    json_: dict[str, Any] = Field(default_factory=dict, alias="json")
    headers: dict[str, Regex] = Field(default_factory=dict)
    max_duration: Duration | None = None

    @field_validator("json_")
    @classmethod
    def _paths(cls, v: dict[str, Any]) -> dict[str, Any]:
        for path in v:
            if not path.startswith("$"):
                raise ValueError(f"JSONPath {path!r} must start with '$'")
        return v


class HttpRequest(_Model):
    """One HTTP request with its assertions (an ``http`` check, or one flow step)."""

    url: str
    method: Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] = "GET"
    headers: dict[str, str] = Field(default_factory=dict)
    body: str | None = None
    basic_auth: BasicAuth | None = None
    bearer_token: SecretStr | None = None
    bearer_token_file: str | None = None
    tls_config: TLSConfig = Field(default_factory=TLSConfig)
    follow_redirects: bool = True
    max_body_bytes: int = Field(default=1024 * 1024, gt=0)
    expect: HttpExpect = Field(default_factory=HttpExpect)

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not re.match(r"^https?://[^/\s]+", v) and not v.startswith("${"):
            raise ValueError(f"url must be an absolute http:// or https:// URL, got {v!r}")
        return v

    @model_validator(mode="after")
    def _secrets(self) -> Self:
        token = _secret_or_file(self.bearer_token, self.bearer_token_file, "bearer_token")
        object.__setattr__(self, "bearer_token", token)
        if token is not None and self.basic_auth is not None:
            raise ValueError("at most one of basic_auth and bearer_token may be set")
        return self


class HttpCheck(HttpRequest):
    pass


class Capture(_Model):
    """Where a flow step takes a value for later steps: a JSONPath or a header."""

    json_: str | None = Field(default=None, alias="json")
    header: str | None = None

    @model_validator(mode="after")
    def _one(self) -> Self:
        if (self.json_ is None) == (self.header is None):
            raise ValueError("a capture takes exactly one of json or header")
        if self.json_ is not None and not self.json_.startswith("$"):
            raise ValueError(f"JSONPath {self.json_!r} must start with '$'")
        return self


class FlowStep(HttpRequest):
    name: Annotated[str, Field(pattern=r"^[a-zA-Z0-9_][a-zA-Z0-9_.:-]*$")]
    capture: dict[Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")], Capture] = Field(
        default_factory=dict
    )


_VAR_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class FlowCheck(_Model):
    """An ordered multi-step HTTP transaction; ``${name}`` refers to earlier captures."""

    steps: list[FlowStep] = Field(min_length=1)

    @model_validator(mode="after")
    def _steps(self) -> Self:
        seen_steps: set[str] = set()
        known: set[str] = set()
        captured = {name for step in self.steps for name in step.capture}
        for i, step in enumerate(self.steps):
            if step.name in seen_steps:
                raise ValueError(f"steps[{i}]: duplicate step name {step.name!r}")
            seen_steps.add(step.name)
            texts = [step.url, step.body or "", *step.headers.values()]
            for text in texts:
                for var in _VAR_RE.findall(text):
                    # Names captured nowhere were already reported as unset environment variables.
                    if var in captured and var not in known:
                        raise ValueError(
                            f"steps[{i}] ({step.name}): ${{{var}}} is captured only by a later step"
                        )
            known.update(step.capture)
        return self


def _host_port(v: str) -> str:
    host, sep, port = v.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected host:port, got {v!r}")
    return v


HostPort = Annotated[str, BeforeValidator(_host_port)]


class TcpCheck(_Model):
    target: HostPort
    send: str | None = None
    expect: Regex | None = None
    tls: bool = False
    tls_config: TLSConfig = Field(default_factory=TLSConfig)


class TlsCheck(_Model):
    """Connects with TLS and reports the certificate chain's expiry."""

    target: HostPort
    tls_config: TLSConfig = Field(default_factory=TLSConfig)
    min_days_remaining: float | None = Field(default=None, ge=0)


class WebsocketCheck(_Model):
    url: str
    headers: dict[str, str] = Field(default_factory=dict)
    send: str | None = None
    expect: Regex | None = None
    tls_config: TLSConfig = Field(default_factory=TLSConfig)

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not re.match(r"^wss?://[^/\s]+", v):
            raise ValueError(f"url must be a ws:// or wss:// URL, got {v!r}")
        return v


class RedisCheck(_Model):
    target: HostPort
    username: str | None = None
    password: SecretStr | None = None
    password_file: str | None = None
    db: int = Field(default=0, ge=0)
    tls: bool = False
    tls_config: TLSConfig = Field(default_factory=TLSConfig)

    @model_validator(mode="after")
    def _resolve(self) -> Self:
        object.__setattr__(
            self, "password", _secret_or_file(self.password, self.password_file, "password")
        )
        return self


class PostgresCheck(_Model):
    target: HostPort
    user: str = "postgres"
    database: str = "postgres"
    password: SecretStr | None = None
    password_file: str | None = None
    sslmode: Literal["disable", "prefer", "require", "verify-ca", "verify-full"] = "prefer"
    query: str = "SELECT 1"

    @model_validator(mode="after")
    def _resolve(self) -> Self:
        object.__setattr__(
            self, "password", _secret_or_file(self.password, self.password_file, "password")
        )
        return self


KindConfig = (
    HttpCheck | FlowCheck | TcpCheck | TlsCheck | WebsocketCheck | RedisCheck | PostgresCheck
)


class CheckConfig(_Model):
    """One synthetic check: common scheduling fields plus exactly one kind."""

    name: str
    interval: Duration = 30.0
    timeout: Duration | None = None
    labels: dict[LabelName, str] = Field(default_factory=dict)
    http: HttpCheck | None = None
    flow: FlowCheck | None = None
    tcp: TcpCheck | None = None
    tls: TlsCheck | None = None
    websocket: WebsocketCheck | None = None
    redis: RedisCheck | None = None
    postgres: PostgresCheck | None = None

    @field_validator("timeout")
    @classmethod
    def _timeout(cls, v: float | None, info: ValidationInfo) -> float | None:
        interval = info.data.get("interval")
        if v is not None and (v <= 0 or (interval is not None and v > interval)):
            raise ValueError("timeout must be positive and not longer than interval")
        return v

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _CHECK_NAME_RE.match(v):
            raise ValueError(f"invalid check name {v!r} (letters, digits, _ . : -)")
        return v

    @field_validator("labels")
    @classmethod
    def _labels(cls, v: dict[str, str]) -> dict[str, str]:
        clash = sorted(_RESERVED_LABELS & v.keys())
        if clash:
            raise ValueError(f"label names {clash} are reserved by the agent")
        return v

    @model_validator(mode="after")
    def _kind_and_timeout(self) -> Self:
        kinds = [k for k in CHECK_KINDS if getattr(self, k) is not None]
        if len(kinds) != 1:
            found = ", ".join(kinds) if kinds else "none"
            raise ValueError(
                f"a check takes exactly one of {', '.join(CHECK_KINDS)} (found: {found})"
            )
        if self.interval <= 0:
            raise ValueError("interval must be positive")
        if self.timeout is None:
            object.__setattr__(self, "timeout", min(10.0, self.interval * 0.8))
        return self

    @property
    def kind(self) -> str:
        return next(k for k in CHECK_KINDS if getattr(self, k) is not None)

    @property
    def spec(self) -> KindConfig:
        """The kind-specific part of this check."""
        spec: KindConfig = getattr(self, self.kind)
        return spec

    @property
    def run_timeout(self) -> float:
        assert self.timeout is not None  # filled by the validator
        return self.timeout


# --------------------------------------------------------------------------- the rest


class GlobalConfig(_Model):
    scrape_interval: Duration = 15.0
    evaluation_interval: Duration = 15.0
    external_labels: dict[LabelName, str] = Field(default_factory=dict)


class TLSServerConfig(_Model):
    cert_file: str
    key_file: str


class WebConfig(_Model):
    """HTTP server security, as Prometheus exporter-toolkit's web configuration."""

    tls_server_config: TLSServerConfig | None = None
    basic_auth_users: dict[str, SecretStr] = Field(default_factory=dict)
    enable_lifecycle: bool = False

    @field_validator("basic_auth_users")
    @classmethod
    def _bcrypt(cls, v: dict[str, SecretStr]) -> dict[str, SecretStr]:
        for user, hashed in v.items():
            if not hashed.get_secret_value().startswith(("$2a$", "$2b$", "$2y$")):
                raise ValueError(f"password of user {user!r} must be a bcrypt hash")
        return v


class JsonlSinkConfig(_Model):
    path: str = "pilot-events.jsonl"
    max_bytes: int = Field(default=10 * 1024 * 1024, gt=0)
    backups: int = Field(default=5, ge=0)
    fsync: bool = False


class EventsConfig(_Model):
    source: str = "pilot-agent"
    jsonl: JsonlSinkConfig = Field(default_factory=JsonlSinkConfig)


def _listen(v: str) -> str:
    _host, sep, port = v.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f"expected [host]:port, got {v!r}")
    return v


class AgentConfig(_Model):
    """The whole configuration file."""

    global_: GlobalConfig = Field(default_factory=GlobalConfig, alias="global")
    listen: Annotated[str, BeforeValidator(_listen)] = "127.0.0.1:9700"
    web: WebConfig = Field(default_factory=WebConfig)
    checks: list[CheckConfig] = Field(default_factory=list)
    events: EventsConfig = Field(default_factory=EventsConfig)
    # Sections that later capabilities fill in; accepted now so files stay forward compatible.
    scrape_configs: list[dict[str, Any]] = Field(default_factory=list)
    rule_files: list[str] = Field(default_factory=list)
    alerting: dict[str, Any] = Field(default_factory=dict)
    state: dict[str, Any] = Field(default_factory=dict)

    @property
    def listen_host_port(self) -> tuple[str, int]:
        host, _, port = self.listen.rpartition(":")
        return (host.strip("[]") or "0.0.0.0", int(port))


# --------------------------------------------------------------------------- loading

Path_ = tuple[str | int, ...]


def _compose(text: str, file: str) -> tuple[Any, dict[Path_, int]]:
    """YAML text to plain data plus a map from each node's path to its 1-based line."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([ConfigProblem(file, "", line, f"invalid YAML: {problem}")]) from None
    lines: dict[Path_, int] = {}
    if root is None:
        return {}, lines
    loader = yaml.SafeLoader("")
    return _construct(root, (), lines, loader), lines


def _construct(node: yaml.Node, path: Path_, lines: dict[Path_, int], loader: Any) -> Any:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, str):
                key = str(key)
            out[key] = _construct(value_node, (*path, key), lines, loader)
            lines[(*path, key)] = key_node.start_mark.line + 1
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_construct(v, (*path, i), lines, loader) for i, v in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


_ENV_RE = re.compile(r"\$(\$|\{([A-Za-z_][A-Za-z0-9_]*)\})")


def _expand_env(
    data: Any,
    env: Mapping[str, str],
    path: Path_,
    problems: list[tuple[Path_, str]],
    keep: frozenset[str] = frozenset(),
) -> Any:
    """Replace ``${VAR}`` by the environment's value; ``$$`` is a literal ``$``.

    Names in ``keep`` (captures of a flow) are left for the flow to fill in at run time.
    """
    if isinstance(data, dict):
        if path[-2:-1] == ("checks",) and isinstance(data.get("flow"), dict):
            steps = data["flow"].get("steps")
            if isinstance(steps, list):
                names = {
                    n
                    for s in steps
                    if isinstance(s, dict) and isinstance(s.get("capture"), dict)
                    for n in s["capture"]
                }
                keep = keep | frozenset(names)
        return {k: _expand_env(v, env, (*path, k), problems, keep) for k, v in data.items()}
    if isinstance(data, list):
        return [_expand_env(v, env, (*path, i), problems, keep) for i, v in enumerate(data)]
    if not isinstance(data, str) or "$" not in data:
        return data

    def sub(m: re.Match[str]) -> str:
        if m.group(1) == "$":
            return "$"
        name = m.group(2)
        if name in keep:
            return m.group(0)
        if name not in env:
            problems.append((path, f"environment variable {name} is not set"))
            return m.group(0)
        return env[name]

    return _ENV_RE.sub(sub, data)


def _format_path(loc: Path_) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


def _line_for(loc: Path_, lines: Mapping[Path_, int]) -> int | None:
    for n in range(len(loc), -1, -1):
        if loc[:n] in lines:
            return lines[loc[:n]]
    return None


def _clean_loc(loc: tuple[str | int, ...]) -> Path_:
    """Drop pydantic's internal segments (function-after[...] and friends)."""
    return tuple(
        p for p in loc if not (isinstance(p, str) and ("[" in p or p.startswith("function")))
    )


def _duplicate_check_names(
    data: Mapping[str, Any], file: str, lines: Mapping[Path_, int]
) -> list[ConfigProblem]:
    checks = data.get("checks")
    if not isinstance(checks, list):
        return []
    seen: dict[str, int] = {}
    out = []
    for i, check in enumerate(checks):
        name = check.get("name") if isinstance(check, dict) else None
        if not isinstance(name, str):
            continue
        if name in seen:
            loc: Path_ = ("checks", i, "name")
            out.append(
                ConfigProblem(
                    file,
                    _format_path(loc),
                    _line_for(loc, lines),
                    f"duplicate check name {name!r} (first used at checks[{seen[name]}])",
                )
            )
        else:
            seen[name] = i
    return out


def parse_config(text: str, file: str, env: Mapping[str, str] | None = None) -> AgentConfig:
    """Parse configuration text; raise :class:`ConfigError` listing every problem."""
    data, lines = _compose(text, file)
    if not isinstance(data, dict):
        raise ConfigError([ConfigProblem(file, "", 1, "the configuration must be a mapping")])
    env_problems: list[tuple[Path_, str]] = []
    data = _expand_env(data, os.environ if env is None else env, (), env_problems)
    problems = [
        ConfigProblem(file, _format_path(p), _line_for(p, lines), msg) for p, msg in env_problems
    ]
    problems.extend(_duplicate_check_names(data, file, lines))
    try:
        cfg = AgentConfig.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            loc = _clean_loc(err["loc"])
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = f"unknown field {loc[-1]!r}" if loc else msg
            problems.append(ConfigProblem(file, _format_path(loc), _line_for(loc, lines), msg))
        problems.sort(key=lambda p: (p.line or 0, p.path))
        raise ConfigError(problems) from None
    problems.sort(key=lambda p: (p.line or 0, p.path))
    if problems:
        raise ConfigError(problems)
    return cfg


def load_config(path: str | Path, env: Mapping[str, str] | None = None) -> AgentConfig:
    """Read and parse a configuration file."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        problem = ConfigProblem(str(p), "", None, f"cannot read: {exc.strerror}")
        raise ConfigError([problem]) from None
    return parse_config(text, str(p), env)
