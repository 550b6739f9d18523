"""HTTP basic authentication for every endpoint, as Prometheus's exporter-toolkit does it.

When the web configuration lists ``basic_auth_users`` (user name to bcrypt hash),
every request must carry matching credentials or gets ``401`` with
``WWW-Authenticate: Basic``. bcrypt is slow on purpose, so a successful check is
remembered under a digest of (user, stored hash, supplied password): a wrong
password gives a different key and always goes through bcrypt, and changing a
user's hash invalidates what was remembered for it.

>>> from starlette.applications import Starlette
>>> app = BasicAuthMiddleware(Starlette(), users=dict)
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
from collections import OrderedDict
from collections.abc import Callable, Mapping

import bcrypt
import structlog
from pydantic import SecretStr
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

log = structlog.get_logger(__name__)

# A bcrypt hash of a random string nobody knows; checked against when the user is
# unknown so that answering does not reveal which user names exist.
_DUMMY_HASH = b"$2b$10$QvqIK0O/dJaubzofYI3JoOBtHeG.hOej2ML6huj32z4rAdVZB/TRC"

Users = Callable[[], Mapping[str, SecretStr]]


def _checkpw(password: bytes, hashed: bytes) -> bool:
    try:
        return bcrypt.checkpw(password, hashed)
    except ValueError:  # malformed hash, or a password longer than bcrypt's 72 bytes
        return False


class BasicAuthenticator:
    """Checks user name and password against bcrypt hashes, remembering successes.

    >>> import asyncio, bcrypt
    >>> from pydantic import SecretStr
    >>> users = {"ops": SecretStr(bcrypt.hashpw(b"pw", bcrypt.gensalt(4)).decode())}
    >>> asyncio.run(BasicAuthenticator().verify(users, "ops", "pw"))
    True
    """

    def __init__(self, max_cached: int = 1024) -> None:
        self._max_cached = max_cached
        self._ok: OrderedDict[bytes, None] = OrderedDict()

    async def verify(self, users: Mapping[str, SecretStr], username: str, password: str) -> bool:
        secret = users.get(username)
        hashed = secret.get_secret_value().encode() if secret is not None else _DUMMY_HASH
        key = _cache_key(username, hashed, password)
        if secret is not None and key in self._ok:
            self._ok.move_to_end(key)
            return True
        ok = await asyncio.to_thread(_checkpw, password.encode(), hashed)
        if not ok or secret is None:
            return False
        self._ok[key] = None
        if len(self._ok) > self._max_cached:
            self._ok.popitem(last=False)
        return True


def _cache_key(username: str, hashed: bytes, password: str) -> bytes:
    h = hashlib.sha256()
    for part in (username.encode(), hashed, password.encode()):
        h.update(len(part).to_bytes(4, "big"))
        h.update(part)
    return h.digest()


def parse_basic(headers: list[tuple[bytes, bytes]]) -> tuple[str, str] | None:
    """User name and password from an ``Authorization: Basic`` header, or None.

    >>> parse_basic([(b"authorization", b"Basic b3BzOnB3")])
    ('ops', 'pw')
    """
    value = next((v for k, v in headers if k.lower() == b"authorization"), None)
    if value is None:
        return None
    scheme, _, encoded = value.partition(b" ")
    if scheme.lower() != b"basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    username, sep, password = decoded.partition(":")
    return (username, password) if sep else None


class BasicAuthMiddleware:
    """Pure ASGI middleware that requires basic auth when any user is configured.

    ``users`` is read on every request, so a reload that changes the users takes
    effect at once. Nothing about the credentials is ever logged.
    """

    def __init__(self, app: ASGIApp, *, users: Users) -> None:
        self.app = app
        self._users = users
        self._auth = BasicAuthenticator()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        users = self._users()
        if not users or await self._allowed(users, scope):
            await self.app(scope, receive, send)
            return
        log.info("http_basic_auth_rejected", path=scope.get("path", ""))
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        response = PlainTextResponse(
            "Unauthorized\n", status_code=401, headers={"WWW-Authenticate": "Basic"}
        )
        await response(scope, receive, send)

    async def _allowed(self, users: Mapping[str, SecretStr], scope: Scope) -> bool:
        credentials = parse_basic(scope["headers"])
        if credentials is None:
            return False
        return await self._auth.verify(users, *credentials)
