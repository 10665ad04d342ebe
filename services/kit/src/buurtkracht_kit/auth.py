"""Who is calling: bearer JWTs as an OIDC provider issues them (RS256, key from a JWKS URL or a PEM file).

Claims: `sub` (pseudonymous id), `roles` (resident, official, steering_group, admin, integration),
`areas` (CBS codes the caller lives in or is responsible for). Nothing else of the token is trusted, and a
token whose claims are not of these shapes (`roles` and `areas` lists of strings) is refused like a forged one.
Clocks may differ by `LEEWAY_SECONDS` (`iat`, `nbf`, `exp`). Keys from a JWKS URL are trusted for as long as the
fetched key set is (`JWKS_LIFESPAN_SECONDS`): a key the identity provider removed is refused after that.

Every request pays for its token's check, so the check stays on the event loop and does only the
signature's work: a PEM key is parsed once, when the verifier is made (a file that holds no RSA public
key stops the start), and JWKS keys are parsed once per fetch by PyJWT's cache.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from fastapi import Depends, Request
from jwt.algorithms import RSAAlgorithm

from buurtkracht_contracts.areas import within

from .problems import Problem
from .tokens import Role, mint

__all__ = ["ALGORITHMS", "Caller", "Principal", "Role", "TokenVerifier", "authenticated", "mint", "require"]

ALGORITHMS = ["RS256"]
LEEWAY_SECONDS = 30
JWKS_LIFESPAN_SECONDS = 300


@dataclass(frozen=True)
class Principal:
    subject: str
    roles: frozenset[Role]
    areas: frozenset[str]

    def has(self, role: Role) -> bool:
        return role in self.roles

    def acts_for(self, area_code: str) -> bool:
        """Whether the caller is responsible for `area_code`: it is one of their areas or lies inside one.

        CBS codes nest by prefix after the kind: GM0363 ⊃ WK036301 ⊃ BU03630001.
        """
        return any(within(area_code, area) for area in self.areas)

    def lives_in(self, area_code: str) -> bool:
        """Whether the caller's home buurt lies in `area_code` (a resident's `areas` is their buurt)."""
        return any(within(home, area_code) for home in self.areas)


class TokenVerifier:
    def __init__(self, *, issuer: str, audience: str, public_key_file: Path | None = None, jwks_url: str | None = None):
        if not (public_key_file or jwks_url):
            raise ValueError("set BK_JWT_PUBLIC_KEY_FILE or BK_JWT_JWKS_URL")
        self._issuer, self._audience = issuer, audience
        self._key = _public_key(public_key_file.read_bytes()) if public_key_file else None
        # no cache of single keys (PyJWT's never expires): keys come from the fetched set, which expires
        self._jwks = _JwksClient(jwks_url, cache_keys=False, lifespan=JWKS_LIFESPAN_SECONDS) if jwks_url else None
        self._cached_key_ids: frozenset[str | None] = frozenset()  # key ids of the set fetched last

    async def verify_without_blocking(self, token: str) -> Principal:
        """`verify`, on the event loop unless the token's key may have to be fetched from the JWKS URL first (a
        key id not in the set fetched last, that set about to expire, or a malformed token): that is checked in
        a worker thread, so a fetch never stalls the loop."""
        if self._jwks is not None and not (_key_id(token) in self._cached_key_ids and self._jwks.fresh_for(seconds=5)):
            return await asyncio.to_thread(self.verify, token)
        return self.verify(token)

    def verify(self, token: str) -> Principal:
        try:
            if self._jwks is not None:
                signing_key = self._jwks.get_signing_key_from_jwt(token)
                self._cached_key_ids = self._jwks.key_ids
                key = signing_key.key
            else:
                key = self._key
        except jwt.PyJWKClientConnectionError as error:
            raise Problem(
                503,
                "Service unavailable",
                "the identity provider's keys cannot be fetched",
                kind="keys-unavailable",
                headers={"Retry-After": "5"},
            ) from error
        except jwt.PyJWTError as error:
            raise _invalid_token(error) from error
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=ALGORITHMS,
                audience=self._audience,
                issuer=self._issuer,
                options={"require": ["sub", "exp", "iss", "aud"]},
                leeway=LEEWAY_SECONDS,
            )
            for claim in ("roles", "areas"):
                if not _strings(claims.get(claim, [])):
                    raise ValueError(f"the {claim} claim must be a list of strings")
            if not isinstance(claims["sub"], str) or not claims["sub"]:
                raise ValueError("the sub claim must be a non-empty string")
            roles = frozenset(Role(role) for role in claims.get("roles", []))
        except (jwt.PyJWTError, ValueError) as error:
            raise _invalid_token(error) from error
        return Principal(subject=claims["sub"], roles=roles, areas=frozenset(claims.get("areas", [])))


class _JwksClient(jwt.PyJWKClient):
    """PyJWT's JWKS client, telling when it last fetched the key set and which key ids that set holds."""

    _fetched_at = float("-inf")
    key_ids: frozenset[str | None] = frozenset()

    def fetch_data(self) -> object:
        data = super().fetch_data()
        self._fetched_at = time.monotonic()
        keys = data.get("keys", []) if isinstance(data, dict) else []
        self.key_ids = frozenset(key.get("kid") for key in keys if isinstance(key, dict))
        return data

    def fresh_for(self, seconds: float) -> bool:
        """Whether the fetched set is still trusted `seconds` from now (no fetch needed before then)."""
        return time.monotonic() + seconds < self._fetched_at + JWKS_LIFESPAN_SECONDS


def _strings(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _key_id(token: str) -> str | None:
    try:
        return jwt.get_unverified_header(token).get("kid")
    except jwt.PyJWTError:
        return None


def _public_key(pem: bytes) -> RSAPublicKey:
    """The RSA public key in `pem`; a private key or anything else is refused."""
    key = RSAAlgorithm(RSAAlgorithm.SHA256).prepare_key(pem)
    if not isinstance(key, RSAPublicKey):
        raise ValueError("the token verification key must be an RSA public key")
    return key


def _invalid_token(error: Exception) -> Problem:
    return Problem(
        401,
        "Unauthorized",
        f"invalid bearer token: {error}",
        kind="unauthorized",
        headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
    )


async def authenticated(request: Request) -> Principal:
    """FastAPI dependency: the verified caller, or a 401 problem.

    A coroutine on purpose: FastAPI runs a plain function dependency in a worker thread, a hop per request
    that costs more than the check itself."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Problem(
            401,
            "Unauthorized",
            "a bearer token is required",
            kind="unauthorized",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return await request.app.state.token_verifier.verify_without_blocking(token)


Caller = Annotated[Principal, Depends(authenticated)]


def require(*roles: Role):
    """FastAPI dependency factory: the caller, when they hold one of `roles`; else a 403 problem."""

    async def dependency(principal: Caller) -> Principal:
        if not principal.roles & set(roles):
            raise Problem.forbidden("this needs the role " + " or ".join(role.value for role in roles))
        return principal

    return dependency
