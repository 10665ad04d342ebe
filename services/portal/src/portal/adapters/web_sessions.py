"""The sessions of the portal's pages in the portal's PostgreSQL (the only SQL about them). A row is found by the
SHA-256 of the cookie's token, never by the token itself."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass
class WebSession:
    id_hash: str
    csrf_token: str
    expires_at: datetime
    subject: str | None = None
    display_name: str | None = None
    roles: list[str] = field(default_factory=list)
    areas: list[str] = field(default_factory=list)
    access_token: str | None = None
    id_token: str | None = None
    sign_in_state: dict[str, Any] = field(default_factory=dict)

    @property
    def signed_in(self) -> bool:
        return self.access_token is not None


_COLUMNS = "id_hash, csrf_token, expires_at, subject, display_name, roles, areas, access_token, id_token, sign_in_state"


class WebSessions:
    def __init__(self, connection: asyncpg.Connection) -> None:
        self._conn = connection

    async def find(self, token: str) -> WebSession | None:
        """The session of `token`, unless it has expired."""
        row = await self._conn.fetchrow(
            f"SELECT {_COLUMNS} FROM web_sessions WHERE id_hash = $1 AND expires_at > now()", token_hash(token)
        )
        return WebSession(**{**dict(row), "roles": list(row["roles"]), "areas": list(row["areas"])}) if row else None

    async def save(self, session: WebSession) -> None:
        await self._conn.execute(
            f"""INSERT INTO web_sessions ({_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                ON CONFLICT (id_hash) DO UPDATE SET csrf_token = excluded.csrf_token,
                    expires_at = excluded.expires_at, subject = excluded.subject,
                    display_name = excluded.display_name, roles = excluded.roles, areas = excluded.areas,
                    access_token = excluded.access_token, id_token = excluded.id_token,
                    sign_in_state = excluded.sign_in_state""",
            session.id_hash,
            session.csrf_token,
            session.expires_at,
            session.subject,
            session.display_name,
            session.roles,
            session.areas,
            session.access_token,
            session.id_token,
            session.sign_in_state,  # the pool's codec writes JSON (`kit.db`)
        )

    async def delete(self, id_hash: str) -> None:
        await self._conn.execute("DELETE FROM web_sessions WHERE id_hash = $1", id_hash)
