"""Sessions of the portal's pages: a visitor half-way through signing in, a person signed in, signing out.

Invariants:
- a sign-in ends in a new session with a new token (the one used while signing in is dropped), so a token known
  before signing in is worth nothing after it;
- the access token is kept in the session row only, never sent to the browser;
- every session has its own random CSRF token, which every form of it carries back.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from ..adapters.unit_of_work import PortalUnitOfWork
from ..adapters.web_sessions import WebSession, token_hash

SIGN_IN_MINUTES = 15  # how long a visitor may take at the identity provider


def new_token() -> str:
    return secrets.token_urlsafe(32)


async def find(uow: PortalUnitOfWork, token: str | None) -> WebSession | None:
    return await uow.sessions.find(token) if token else None


async def begin_sign_in(
    uow: PortalUnitOfWork, current: WebSession | None, state: dict[str, Any]
) -> tuple[str | None, WebSession]:
    """Keep `state` (what the identity provider's client needs at the callback) in the visitor's session, a new
    short one if they have none; the new session's token, or None when the current one was kept."""
    if current is not None:
        current.sign_in_state = state
        await uow.sessions.save(current)
        return None, current
    token = new_token()
    session = WebSession(
        id_hash=token_hash(token),
        csrf_token=new_token(),
        expires_at=datetime.now(UTC) + timedelta(minutes=SIGN_IN_MINUTES),
        sign_in_state=state,
    )
    await uow.sessions.save(session)
    return token, session


async def signed_in(
    uow: PortalUnitOfWork,
    previous: WebSession | None,
    *,
    subject: str,
    display_name: str | None,
    roles: list[str],
    areas: list[str],
    access_token: str,
    id_token: str | None,
    hours: float,
    access_expires_at: datetime | None = None,
) -> tuple[str, WebSession]:
    """A new session for the person who signed in, replacing `previous`; its token. It ends when the access token
    does, or after `hours`, whichever comes first."""
    if previous is not None:
        await uow.sessions.delete(previous.id_hash)
    token = new_token()
    expires = datetime.now(UTC) + timedelta(hours=hours)
    if access_expires_at is not None:
        expires = min(expires, access_expires_at)
    session = WebSession(
        id_hash=token_hash(token),
        csrf_token=new_token(),
        expires_at=expires,
        subject=subject,
        display_name=display_name,
        roles=sorted(roles),
        areas=sorted(areas),
        access_token=access_token,
        id_token=id_token,
    )
    await uow.sessions.save(session)
    return token, session


async def sign_out(uow: PortalUnitOfWork, session: WebSession) -> str | None:
    """Forget the session; the ID token, for the identity provider's sign-out."""
    await uow.sessions.delete(session.id_hash)
    return session.id_token
