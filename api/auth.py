"""Who is calling and what they may do: every API route requires `Authorization: Bearer <token>`.

Keys live in the database (`prodgraph keys create`, the admin routes under /api/keys); keys in
PRODGRAPH_API_KEYS bootstrap a deployment and serve tests. Only SHA-256 digests are kept. A
presented token is first compared against every configured digest with `hmac.compare_digest`
(fixed length, no early exit, so neither the tokens' lengths nor which one nearly matched leaks
through timing), then looked up by digest in the database, in a worker thread so the event loop
never waits on it, and remembered for PRODGRAPH_API_KEY_CACHE_S seconds.

Each route declares the roles it serves with `require_role`; an admin may call every route.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request, Security
from fastapi.routing import iter_route_contexts
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import ValidationError
from sqlalchemy import Engine
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from api.errors import EdgeError
from core.errors import first_problem
from core.settings import BootstrapKey, Settings
from core.vocabulary import Role
from prodgraph.keys import KeyGrant, count_active, find_grant

log = logging.getLogger(__name__)

#: The owner of requests served without a token (PRODGRAPH_API_ALLOW_ANONYMOUS, development only).
ANONYMOUS = "anonymous"
#: Shorter tokens are refused at startup: a guessable key is no key.
MIN_TOKEN_LENGTH = 16
CHALLENGE = {"WWW-Authenticate": "Bearer"}
#: Most database keys remembered at once; beyond it the oldest lookups are forgotten first.
MAX_REMEMBERED = 10_000

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    description="An API key (`prodgraph keys create`), sent as `Authorization: Bearer <key>`.",
)


@dataclass(frozen=True)
class Caller:
    """Who is behind a request: the owner its API key acts for, and the key's role."""

    owner: str
    role: Role = Role.client
    anonymous: bool = False
    key_id: str | None = None
    """The key that authenticated the request: what the invocation rate limit counts by."""

    @property
    def sees_everything(self) -> bool:
        """Operators and admins see every owner's runs, files and artifacts."""
        return self.role in (Role.operator, Role.admin)

    def may_see(self, owner: str | None) -> bool:
        """Whether an object of this owner is visible to the caller (else it answers 404)."""
        return self.sees_everything or owner == self.owner


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def _bootstrap_key(token: str, value: object) -> BootstrapKey:
    """A configured value as a key: a plain owner string is a client key."""
    try:
        key = BootstrapKey(owner=value) if isinstance(value, str) else BootstrapKey.model_validate(value)
    except ValidationError as error:
        field, message = first_problem(error)
        raise ValueError(f"PRODGRAPH_API_KEYS: a key's {field or 'value'}: {message}") from None
    if len(token) < MIN_TOKEN_LENGTH:
        raise ValueError(
            f"PRODGRAPH_API_KEYS: the token of {key.owner!r} is shorter than {MIN_TOKEN_LENGTH} "
            "characters; use a long random one (`prodgraph keys create` makes keys in the database)"
        )
    if not key.owner.strip():
        raise ValueError("PRODGRAPH_API_KEYS: every token must name its owner")
    return key


class ApiKeys:
    """The keys PRODGRAPH_API_KEYS configures, as digests, and whether token-less requests are served."""

    def __init__(
        self, keys: Mapping[str, str | BootstrapKey | Mapping[str, Any]], *, allow_anonymous: bool = False
    ):
        grants = []
        for token, value in keys.items():
            key = _bootstrap_key(token, value)
            digest = _digest(token)
            grants.append(
                (digest, KeyGrant(key_id=f"env-{digest.hex()[:12]}", role=key.role, owner=key.owner))
            )
        self._grants = grants
        self.allow_anonymous = allow_anonymous

    @classmethod
    def from_settings(cls, settings: Settings) -> ApiKeys:
        """The keys these settings configure."""
        return cls(settings.api_keys, allow_anonymous=settings.api_allow_anonymous)

    def __len__(self) -> int:
        return len(self._grants)

    def grant_of(self, token: str) -> KeyGrant | None:
        """What this token grants, or None; every key is compared whatever matches."""
        digest = _digest(token)
        found = None
        for known, grant in self._grants:
            if hmac.compare_digest(digest, known):
                found = grant
        return found

    def describe(self, stored: int) -> str:
        """One line for the startup log (owners and roles only, never a token)."""
        if not self._grants and not stored:
            return (
                "API: anonymous access allowed (development only) and no keys yet"
                if self.allow_anonymous
                else "API: no keys yet, every request is refused; create one with "
                "`prodgraph keys create --role admin --owner NAME`"
            )
        configured = ", ".join(sorted({f"{grant.owner} ({grant.role})" for _, grant in self._grants}))
        extra = "; anonymous access allowed (development only)" if self.allow_anonymous else ""
        return (
            f"API: {stored} key(s) in the database, {len(self._grants)} in PRODGRAPH_API_KEYS"
            f"{': ' + configured if configured else ''}{extra}"
        )


class StoredKeys:
    """The database's keys by digest: looked up off the event loop, remembered for a few seconds."""

    def __init__(self, engine: Engine, ttl_s: float, clock: Callable[[], float] = time.monotonic):
        self._engine = engine
        self._ttl_s = ttl_s
        self._clock = clock
        self._remembered: dict[str, tuple[float, KeyGrant]] = {}

    async def grant_of(self, token: str) -> KeyGrant | None:
        """What this token grants (revoked keys included), or None for a token no key has."""
        digest = _digest(token).hex()
        now = self._clock()
        remembered = self._remembered.get(digest)
        if remembered is not None and remembered[0] > now:
            return remembered[1]
        grant = await run_in_threadpool(self._find, digest)
        # Unknown tokens are not remembered: anyone can send them, so they would fill the memory.
        if grant is not None and self._ttl_s > 0:
            self._remember(digest, grant, now)
        return grant

    def forget(self, key_id: str) -> None:
        """Drop what is remembered of a key (it was revoked here, so it stops working now)."""
        for digest, (_, grant) in list(self._remembered.items()):
            if grant.key_id == key_id:
                del self._remembered[digest]

    def count(self) -> int:
        """Keys in the database that are not revoked (for the startup log)."""
        with Session(self._engine) as session:
            return count_active(session)

    def _find(self, digest: str) -> KeyGrant | None:
        with Session(self._engine) as session:
            return find_grant(session, digest)

    def _remember(self, digest: str, grant: KeyGrant, now: float) -> None:
        self._remembered.pop(digest, None)
        while len(self._remembered) >= MAX_REMEMBERED:
            del self._remembered[next(iter(self._remembered))]
        self._remembered[digest] = (now + self._ttl_s, grant)


def unauthorized(message: str) -> EdgeError:
    """401 `unauthorized` with the Bearer challenge."""
    return EdgeError(401, "unauthorized", message, field="Authorization", headers=CHALLENGE)


async def require_caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)],
) -> Caller:
    """The caller of this request, or 401: every router declares it as a dependency."""
    keys: ApiKeys = request.app.state.api_keys
    if credentials is None and request.headers.get("Authorization"):
        raise unauthorized("the Authorization header must be `Bearer <key>`")
    if credentials is None and keys.allow_anonymous:
        # Development only: the anonymous caller may do everything, as before keys had roles.
        return Caller(ANONYMOUS, Role.admin, anonymous=True, key_id=ANONYMOUS)
    if credentials is None:
        raise unauthorized("missing credentials: send `Authorization: Bearer <key>`")
    token = credentials.credentials
    stored: StoredKeys = request.app.state.stored_keys
    grant = keys.grant_of(token) or await stored.grant_of(token)
    if grant is None:
        raise unauthorized(
            "unknown API key; an admin makes keys with `prodgraph keys create` (or sets the "
            "server's PRODGRAPH_API_KEYS)"
        )
    if grant.revoked:
        raise unauthorized(f"API key {grant.key_id} was revoked")
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        log.info(
            "%s %r by %s (%s, %s)", request.method, request.url.path, grant.owner, grant.role, grant.key_id
        )
    return Caller(grant.owner, grant.role, key_id=grant.key_id)


#: Router-level dependencies every router declares: no route is served without a caller.
AUTHENTICATED = [Depends(require_caller)]
#: The caller of the request, for routes that need the owner.
CallerDep = Annotated[Caller, Depends(require_caller)]


def require_role(*roles: Role) -> Any:
    """A route dependency that serves callers of these roles (and admins), else 403 `forbidden`.

    Declare it in a route's (or router's) `dependencies=[...]`, after AUTHENTICATED.
    """
    allowed = tuple(dict.fromkeys((*roles, Role.admin)))
    needed = " or ".join(allowed)

    async def check_role(caller: CallerDep) -> Caller:
        if caller.role not in allowed:
            raise EdgeError(
                403,
                "forbidden",
                f"this route needs the {needed} role; the key of {caller.owner!r} has the {caller.role} role",
                field="Authorization",
            )
        return caller

    check_role.roles = allowed  # type: ignore[attr-defined]  # read by document_roles
    return Depends(check_role)


def document_roles(app: FastAPI) -> None:
    """State in each operation's OpenAPI the roles that may call it (`x-roles`, and in words)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        fresh = app.openapi_schema is None
        document = generate()
        if fresh:
            for context in iter_route_contexts(app.routes):
                dependencies = getattr(context.original_route, "dependencies", ())
                roles = [
                    str(role) for depends in dependencies for role in getattr(depends.dependency, "roles", ())
                ]
                for method in context.methods or () if roles else ():
                    operation = document["paths"].get(context.path_format, {}).get(method.lower())
                    if operation is not None:
                        operation["x-roles"] = roles
                        described = operation.get("description", "")
                        operation["description"] = f"{described}\n\nRoles: {', '.join(roles)}.".lstrip()
        return document

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented override
