"""Bearer tokens as the identity provider issues them: the roles they carry, and minting one for local use.

Kept apart from `auth` (which verifies tokens in requests) so that the command line mints a token
without loading the web framework.
"""

from __future__ import annotations

import time
import uuid
from enum import StrEnum

import jwt


class Role(StrEnum):
    RESIDENT = "resident"
    OFFICIAL = "official"
    STEERING_GROUP = "steering_group"
    ADMIN = "admin"
    INTEGRATION = "integration"


def mint(
    private_key_pem: str,
    *,
    issuer: str,
    audience: str,
    subject: str,
    roles: list[str],
    areas: list[str],
    ttl_seconds: int = 3600,
    key_id: str | None = None,
) -> str:
    """A signed token as the identity provider would issue it (local use and tests)."""
    now = int(time.time())
    claims = {
        "iss": issuer,
        "aud": audience,
        "sub": subject,
        "roles": roles,
        "areas": areas,
        "iat": now,
        "nbf": now,
        "exp": now + ttl_seconds,
        "jti": str(uuid.uuid4()),
    }
    return jwt.encode(claims, private_key_pem, algorithm="RS256", headers={"kid": key_id} if key_id else None)
