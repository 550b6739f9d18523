"""Keeping secrets out of logs, events, API output and Sentry.

:func:`collect_secrets` finds every secret value in a configuration (``SecretStr``
fields, credential-bearing headers, passwords in URLs); a :class:`Scrubber`
replaces them, and any ``user:password@`` in a URL, wherever they appear in a
nested structure. The same scrubber serves structlog and Sentry's ``before_send``.

>>> Scrubber({"hunter2"}).scrub({"msg": "login hunter2 at https://u:p@host/"})
{'msg': 'login [redacted] at https://[redacted]@host/'}
"""

from __future__ import annotations

import re
from collections.abc import Iterable, MutableMapping
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, SecretStr

REDACTED = "[redacted]"
SENSITIVE_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key", "x-auth-token"}
)
_USERINFO_RE = re.compile(r"(?<=://)[^/\s@:]+:[^/\s@]*@")


def collect_secrets(obj: Any) -> set[str]:
    """Every secret value reachable from a configuration model."""
    found: set[str] = set()
    _walk(obj, found, parent_key="")
    return {s for s in found if len(s) >= 4}


def _walk(obj: Any, found: set[str], parent_key: str) -> None:
    if isinstance(obj, SecretStr):
        found.add(obj.get_secret_value())
    elif isinstance(obj, BaseModel):
        for name in type(obj).model_fields:
            _walk(getattr(obj, name), found, name)
    elif isinstance(obj, dict):
        for key, value in obj.items():
            if parent_key == "headers" and str(key).lower() in SENSITIVE_HEADERS:
                found.add(str(value))
                # "Bearer abc": the token alone is a secret too
                found.update(str(value).split()[1:])
            _walk(value, found, str(key))
    elif isinstance(obj, list | tuple):
        for item in obj:
            _walk(item, found, parent_key)
    elif isinstance(obj, str) and "://" in obj:
        password = urlsplit(obj).password
        if password:
            found.add(password)


class Scrubber:
    """Replaces known secret values and URL credentials in nested data."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.update(secrets)

    def update(self, secrets: Iterable[str]) -> None:
        ordered = sorted({s for s in secrets if s}, key=len, reverse=True)
        self._re = re.compile("|".join(re.escape(s) for s in ordered)) if ordered else None

    def scrub_text(self, text: str) -> str:
        if self._re is not None:
            text = self._re.sub(REDACTED, text)
        return _USERINFO_RE.sub(REDACTED + "@", text)

    def scrub(self, data: Any) -> Any:
        if isinstance(data, str):
            return self.scrub_text(data)
        if isinstance(data, dict):
            return {k: self._scrub_item(k, v) for k, v in data.items()}
        if isinstance(data, list):
            return [self.scrub(v) for v in data]
        if isinstance(data, tuple):
            return tuple(self.scrub(v) for v in data)
        return data

    def _scrub_item(self, key: Any, value: Any) -> Any:
        if isinstance(key, str) and key.lower() in SENSITIVE_HEADERS:
            return REDACTED
        return self.scrub(value)

    def __call__(self, _logger: Any, _method: str, event: MutableMapping[str, Any]) -> Any:
        """structlog processor."""
        return self.scrub(dict(event))
