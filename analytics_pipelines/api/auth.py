"""JWT verification, permissions and venue/tenant scoping.

Tokens: algorithm pinned (HS256 with TT_API_JWT_SECRET, or RS256 only when a public key is configured;
`alg: none` and any other algorithm are refused), `exp`, `iss` and `aud` required and checked. Claims:
`sub` (or the seed's `userId`/`id`), `tenant_id`, `venue_id` (null for a tenant-wide admin), `role`,
`permissions`. Scoping comes from the token only: a request may name a venue, but it is served only if it
is the token's venue, or the token is an admin's (role admin or analytics.admin) — then any venue of the
token's tenant, since every query also filters on the token's tenant."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

import jwt
from fastapi import HTTPException, Request

from analytics_pipelines.api.settings import Settings

#: request-state key of a token verified once per request: (token, Principal | the 401 HTTPException); set by
#: the rate limiter (api/ratelimit.py), reused by the auth dependency (api/common.py `principal`)
AUTH_STATE = "tt_auth"

PERMISSIONS = ("analytics.read", "analytics.export", "analytics.admin", "analytics.write")
READ, EXPORT, ADMIN, WRITE = PERMISSIONS
#: WRITE (analytics.write, the seed's): change a venue's operational objects (alert rules) and record custom
#: metrics; admins need not hold it


@dataclass(frozen=True)
class Principal:
    user_id: str
    tenant_id: str
    venue_id: str | None
    role: str
    permissions: frozenset[str]

    @property
    def is_admin(self) -> bool:
        return self.role == "admin" or ADMIN in self.permissions

    def has(self, permission: str) -> bool:
        # the seed's rule: role admin passes every check; '*' grants everything
        return self.role == "admin" or permission in self.permissions or "*" in self.permissions


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(401, detail, headers={"WWW-Authenticate": 'Bearer realm="tickettoken-analytics"'})


def _uuid_text(value, claim: str) -> str:
    try:
        return str(uuid.UUID(str(value)))
    except (ValueError, TypeError, AttributeError):
        raise _unauthorized(f"Invalid token: claim {claim} is not a UUID") from None


def decode_token(settings: Settings, token: str) -> Principal:
    try:
        claims = jwt.decode(
            token,
            settings.verification_key(),
            algorithms=[settings.algorithm],
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            options={"require": ["exp", "iss", "aud"]},
            leeway=5,
        )
    except jwt.ExpiredSignatureError:
        raise _unauthorized("Token expired") from None
    except jwt.InvalidAudienceError:
        raise _unauthorized("Invalid token: wrong audience") from None
    except jwt.InvalidIssuerError:
        raise _unauthorized("Invalid token: wrong issuer") from None
    except jwt.MissingRequiredClaimError as exc:
        raise _unauthorized(f"Invalid token: missing claim {exc.claim}") from None
    except jwt.InvalidTokenError:
        raise _unauthorized("Invalid token") from None
    user = claims.get("sub") or claims.get("userId") or claims.get("id")
    if not user:
        raise _unauthorized("Invalid token: no user id (sub)")
    if not claims.get("tenant_id"):
        raise _unauthorized("Invalid token: no tenant_id")
    venue = claims.get("venue_id") or claims.get("venueId")
    perms = claims.get("permissions") or []
    if not isinstance(perms, list) or not all(isinstance(p, str) for p in perms):
        raise _unauthorized("Invalid token: permissions must be a list of strings")
    role = claims.get("role") or "user"
    if not isinstance(role, str):
        raise _unauthorized("Invalid token: role must be a string")
    return Principal(
        user_id=str(user)[:100],
        tenant_id=_uuid_text(claims["tenant_id"], "tenant_id"),
        venue_id=_uuid_text(venue, "venue_id") if venue else None,
        role=role,
        permissions=frozenset(perms),
    )


def authenticate(request: Request) -> Principal:
    header = request.headers.get("authorization")
    if not header:
        raise _unauthorized("Authentication required")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _unauthorized("Authentication required: use 'Authorization: Bearer <token>'")
    return decode_token(request.app.state.settings, token.strip())


def require(principal: Principal, permission: str) -> None:
    if not principal.has(permission):
        raise HTTPException(403, f"Insufficient permissions: {permission} required")


def venue_scope(principal: Principal, venue_id) -> list[str] | None:
    """The venues a request may read: [venue] or None (= every venue of the token's tenant)."""
    if venue_id is not None:
        venue = str(venue_id)
        if venue == principal.venue_id or principal.is_admin:
            return [venue]
        raise HTTPException(403, f"Forbidden: this token is not scoped to venue {venue}")
    if principal.venue_id and not principal.is_admin:
        return [principal.venue_id]
    if principal.is_admin:
        return None
    raise HTTPException(403, "Forbidden: the token names no venue and is not an admin's")


def mint_token(
    settings: Settings,
    *,
    tenant_id: str,
    venue_id: str | None = None,
    user_id: str = "dev-user",
    role: str = "user",
    permissions: list[str] | None = None,
    expires_in: int = 3600,
    private_key: str | None = None,
    **extra,
) -> str:
    """A token the API configured by `settings` accepts (development tooling and tests)."""
    now = int(time.time())
    claims = {
        "sub": user_id,
        "tenant_id": tenant_id,
        "venue_id": venue_id,
        "role": role,
        "permissions": list(permissions if permissions is not None else [READ]),
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "iat": now,
        "exp": now + expires_in,
        **extra,
    }
    if settings.algorithm == "RS256":
        if not private_key:
            raise ValueError("an RS256 deployment needs --private-key to mint tokens")
        return jwt.encode(claims, private_key, algorithm="RS256")
    return jwt.encode(claims, settings.verification_key(), algorithm="HS256")
