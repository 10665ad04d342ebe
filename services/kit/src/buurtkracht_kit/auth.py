"""Who is calling: bearer JWTs as an OIDC provider issues them (RS256, key from a JWKS URL or a PEM file).

Claims: `sub` (pseudonymous id), `roles` (resident, official, steering_group, admin, integration),
`areas` (CBS codes the caller lives in or is responsible for). Nothing else of the token is trusted.

Every request pays for its token's check, so the check stays on the event loop and does only the
signature's work: a PEM key is parsed once, when the verifier is made (a file that holds no RSA public
key stops the start), and JWKS keys are parsed once per fetch by PyJWT's cache.
"""

from __future__ import annotations

import asyncio
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
        self._jwks = jwt.PyJWKClient(jwks_url, cache_keys=True, lifespan=300) if jwks_url else None
        self._cached_key_ids: set[str | None] = set()  # JWKS keys PyJWT holds parsed: no fetch for these

    async def verify_without_blocking(self, token: str) -> Principal:
        """`verify`, on the event loop unless the token's key must first be fetched from the JWKS URL: that
        (a new key id, or a malformed token) is checked in a worker thread, so a fetch never stalls the loop."""
        if self._jwks is not None and _key_id(token) not in self._cached_key_ids:
            return await asyncio.to_thread(self.verify, token)
        return self.verify(token)

    def verify(self, token: str) -> Principal:
        try:
            if self._jwks is not None:
                signing_key = self._jwks.get_signing_key_from_jwt(token)
                self._cached_key_ids.add(signing_key.key_id)
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
            )
            roles = frozenset(Role(role) for role in claims.get("roles", []))
        except (jwt.PyJWTError, ValueError) as error:
            raise _invalid_token(error) from error
        return Principal(subject=claims["sub"], roles=roles, areas=frozenset(claims.get("areas", [])))


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
