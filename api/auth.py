"""Who is calling: every API route requires `Authorization: Bearer <token>` (PRODGRAPH_API_KEYS).

The app keeps only each token's SHA-256 digest and the owner it names. A presented token is
hashed and compared against every known digest with `hmac.compare_digest` (fixed length, no
early exit), so neither the tokens' lengths nor which one nearly matched leaks through timing.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.errors import EdgeError
from core.settings import Settings
from core.vocabulary import Role

log = logging.getLogger(__name__)

#: The owner of requests served without a token (PRODGRAPH_API_ALLOW_ANONYMOUS, development only).
ANONYMOUS = "anonymous"
#: Shorter tokens are refused at startup: a guessable key is no key.
MIN_TOKEN_LENGTH = 16
CHALLENGE = {"WWW-Authenticate": "Bearer"}

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    description="A token from the server's PRODGRAPH_API_KEYS, sent as `Authorization: Bearer <token>`.",
)


@dataclass(frozen=True)
class Caller:
    """Who is behind a request: the owner its API key acts for, and the key's role."""

    owner: str
    role: Role = Role.client
    anonymous: bool = False

    @property
    def sees_everything(self) -> bool:
        """Operators and admins see every owner's runs, files and artifacts."""
        return self.role in (Role.operator, Role.admin)

    def may_see(self, owner: str | None) -> bool:
        """Whether an object of this owner is visible to the caller (else it answers 404)."""
        return self.sees_everything or owner == self.owner


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class ApiKeys:
    """The configured keys as digest → owner, and whether token-less requests are served."""

    def __init__(self, keys: Mapping[str, str], *, allow_anonymous: bool = False):
        for token, owner in keys.items():
            if len(token) < MIN_TOKEN_LENGTH:
                raise ValueError(
                    f"PRODGRAPH_API_KEYS: the token of {owner!r} is shorter than "
                    f"{MIN_TOKEN_LENGTH} characters; use a long random one (python -c "
                    f"'import secrets; print(secrets.token_urlsafe(32))')"
                )
            if not owner.strip():
                raise ValueError("PRODGRAPH_API_KEYS: every token must name its owner")
        self._owners = [(_digest(token), owner) for token, owner in keys.items()]
        self.allow_anonymous = allow_anonymous

    @classmethod
    def from_settings(cls, settings: Settings) -> ApiKeys:
        """The keys these settings configure."""
        return cls(settings.api_keys, allow_anonymous=settings.api_allow_anonymous)

    def __len__(self) -> int:
        return len(self._owners)

    def owner_of(self, token: str) -> str | None:
        """The owner this token names, or None; every key is compared whatever matches."""
        digest = _digest(token)
        found = None
        for known, owner in self._owners:
            if hmac.compare_digest(digest, known):
                found = owner
        return found

    def describe(self) -> str:
        """One line for the startup log (owners only, never a token)."""
        if not self._owners:
            return (
                "API: anonymous access allowed (development only) and no keys configured"
                if self.allow_anonymous
                else "API: no keys configured, every request is refused; set PRODGRAPH_API_KEYS"
            )
        owners = ", ".join(sorted({owner for _, owner in self._owners}))
        extra = "; anonymous access allowed (development only)" if self.allow_anonymous else ""
        return f"API: {len(self._owners)} key(s) for {owners}{extra}"


def unauthorized(message: str) -> EdgeError:
    """401 `unauthorized` with the Bearer challenge."""
    return EdgeError(401, "unauthorized", message, field="Authorization", headers=CHALLENGE)


def require_caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)],
) -> Caller:
    """The caller of this request, or 401: every router declares it as a dependency."""
    keys: ApiKeys = request.app.state.api_keys
    if credentials is None and request.headers.get("Authorization"):
        raise unauthorized("the Authorization header must be `Bearer <token>`")
    if credentials is None and keys.allow_anonymous:
        return Caller(ANONYMOUS, anonymous=True)
    if not keys:
        raise unauthorized(
            "this API has no keys configured, so it accepts no token: set PRODGRAPH_API_KEYS on "
            "the server to a JSON object of token → owner (PRODGRAPH_API_ALLOW_ANONYMOUS=true "
            "serves requests without a token, for local development only)"
        )
    if credentials is None:
        raise unauthorized("missing credentials: send `Authorization: Bearer <token>`")
    owner = keys.owner_of(credentials.credentials)
    if owner is None:
        raise unauthorized("unknown API key")
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        log.info("%s %r by %s", request.method, request.url.path, owner)
    # Until keys carry roles, a key configured on the server acts for its owner with every right.
    return Caller(owner, Role.admin)


#: Router-level dependencies every router declares: no route is served without a caller.
AUTHENTICATED = [Depends(require_caller)]
#: The caller of the request, for routes that need the owner.
CallerDep = Annotated[Caller, Depends(require_caller)]
