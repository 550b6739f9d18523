"""The simulator's authentication: hand-rolled HS256 JWTs, login and bearer checks.

Only what the simulator needs: sign a claim set with a shared secret, check a
token's header, signature and ``exp`` claim (time is an argument), the login
endpoint that issues tokens for the demo user, and the FastAPI dependency that
guards endpoints with ``Authorization: Bearer <jwt>``.

>>> token = encode({"sub": "pilot", "exp": 200}, b"secret")
>>> decode(token, b"secret", now=100)["sub"]
'pilot'
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Annotated, Any

from fastapi import FastAPI, Header, HTTPException
from pydantic import BaseModel, ConfigDict

DEMO_USERNAME = "pilot"
DEMO_PASSWORD = "pilot-demo"
TOKEN_TTL_SECONDS = 3600
_HEADER = {"alg": "HS256", "typ": "JWT"}


class InvalidTokenError(ValueError):
    """The token is malformed, badly signed or expired; the text says which."""


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise InvalidTokenError("malformed base64url segment") from exc


def _sign(signing_input: bytes, secret: bytes) -> str:
    return _b64encode(hmac.new(secret, signing_input, hashlib.sha256).digest())


def _json_segment(text: str) -> dict[str, Any]:
    try:
        value = json.loads(_b64decode(text))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidTokenError("malformed JSON segment") from exc
    if not isinstance(value, dict):
        raise InvalidTokenError("token segment is not a JSON object")
    return value


def encode(claims: Mapping[str, Any], secret: bytes) -> str:
    """Sign ``claims`` with HMAC-SHA256 and return the compact token."""
    header = _b64encode(json.dumps(_HEADER, separators=(",", ":")).encode())
    payload = _b64encode(json.dumps(dict(claims), separators=(",", ":")).encode())
    signing_input = f"{header}.{payload}"
    return f"{signing_input}.{_sign(signing_input.encode('ascii'), secret)}"


def decode(token: str, secret: bytes, *, now: float) -> dict[str, Any]:
    """Verify ``token`` and return its claims; raise :class:`InvalidTokenError` otherwise."""
    parts = token.split(".")
    if len(parts) != 3:
        raise InvalidTokenError("token must have three segments")
    header, payload, signature = parts
    if _json_segment(header).get("alg") != "HS256":
        raise InvalidTokenError("unsupported algorithm")
    expected = _sign(f"{header}.{payload}".encode("ascii", "replace"), secret)
    if not hmac.compare_digest(expected.encode(), signature.encode("ascii", "replace")):
        raise InvalidTokenError("bad signature")
    claims = _json_segment(payload)
    exp = claims.get("exp")
    if not isinstance(exp, int | float) or isinstance(exp, bool):
        raise InvalidTokenError("missing exp claim")
    if now >= exp:
        raise InvalidTokenError("token expired")
    return claims


class TokenIssuer:
    """Issues and verifies the simulator's access tokens with one secret and lifetime.

    >>> issuer = TokenIssuer(b"secret", ttl_seconds=60, clock=lambda: 1000.0)
    >>> issuer.verify(issuer.issue("pilot"))["sub"]
    'pilot'
    """

    def __init__(
        self,
        secret: bytes,
        *,
        ttl_seconds: int = TOKEN_TTL_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.secret = secret
        self.ttl_seconds = ttl_seconds
        self.clock = clock

    def issue(self, subject: str) -> str:
        """A token for ``subject`` that expires ``ttl_seconds`` from now."""
        now = int(self.clock())
        claims = {"sub": subject, "iat": now, "exp": now + self.ttl_seconds}
        return encode(claims, self.secret)

    def verify(self, token: str) -> dict[str, Any]:
        """The claims of a valid, unexpired token; raise :class:`InvalidTokenError` otherwise."""
        return decode(token, self.secret, now=self.clock())


class LoginRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str
    password: str


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(401, detail, headers={"WWW-Authenticate": "Bearer"})


def bearer_subject(issuer: TokenIssuer) -> Callable[..., Awaitable[str]]:
    """A FastAPI dependency: the subject of a valid bearer token, else HTTP 401."""

    async def subject(authorization: Annotated[str | None, Header()] = None) -> str:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _unauthorized("missing bearer token")
        try:
            return str(issuer.verify(token.strip()).get("sub"))
        except InvalidTokenError as exc:
            raise _unauthorized(str(exc)) from exc

    return subject


def add_login_route(app: FastAPI, issuer: TokenIssuer) -> None:
    """``POST /api/v1/auth/login``: a token for the demo user, 401 for anyone else."""

    async def login(body: LoginRequest) -> dict[str, Any]:
        user_ok = hmac.compare_digest(body.username.encode(), DEMO_USERNAME.encode())
        password_ok = hmac.compare_digest(body.password.encode(), DEMO_PASSWORD.encode())
        if not (user_ok and password_ok):
            raise _unauthorized("invalid username or password")
        token = issuer.issue(body.username)
        return {"access_token": token, "token_type": "bearer", "expires_in": issuer.ttl_seconds}

    app.add_api_route("/api/v1/auth/login", login, methods=["POST"])
