"""The identity provider, spoken to with Authlib's Starlette client: the authorization code flow with PKCE (S256),
`state` and `nonce`, the ID token checked against the provider's keys, and RP-initiated sign-out (end_session).

Authlib keeps what it needs between the redirect and the callback (state, nonce, code verifier) in
`request.session`; the portal hands it the sign-in state of its own server-side session there (`with_state`)."""

from __future__ import annotations

import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from authlib.deprecate import AuthlibDeprecationWarning
from authlib.integrations.base_client import OAuthError

with warnings.catch_warnings():  # Authlib 1.9 would rather have httpx2; httpx, which the portal uses, still works
    warnings.simplefilter("ignore", AuthlibDeprecationWarning)
    from authlib.integrations.starlette_client import OAuth
from starlette.requests import Request
from starlette.responses import RedirectResponse

from ..settings import PortalSettings

__all__ = ["IdentityProvider", "OAuthError"]


class IdentityProvider:
    def __init__(self, settings: PortalSettings, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._settings = settings
        extra = {"transport": transport} if transport is not None else {}  # tests: the provider in this process
        oauth = OAuth()
        self._client = oauth.register(
            "portal",
            client_id=settings.oidc_client_id,
            client_secret=settings.oidc_client_secret or None,
            server_metadata_url=f"{settings.oidc_issuer.rstrip('/')}/.well-known/openid-configuration",
            client_kwargs={
                "scope": "openid profile email",
                "code_challenge_method": "S256",
                "timeout": settings.service_timeout_seconds,
                **extra,
            },
        )

    @staticmethod
    @asynccontextmanager
    async def with_state(request: Request, state: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """Authlib's `request.session` is `state` while the block runs; `state` holds what it left there."""
        request.scope["session"] = state
        try:
            yield state
        finally:
            request.scope.pop("session", None)

    async def redirect_to_sign_in(self, request: Request, state: dict[str, Any]) -> RedirectResponse:
        async with self.with_state(request, state):
            return await self._client.authorize_redirect(request, self.callback_url)

    async def finish_sign_in(self, request: Request, state: dict[str, Any]) -> dict[str, Any]:
        """The token answer (access token, ID token, and the ID token's checked claims as `userinfo`); OAuthError
        for a wrong state, a refused code or an ID token that does not check out."""
        async with self.with_state(request, state):
            token = await self._client.authorize_access_token(request)
        if "userinfo" not in token:
            raise OAuthError(error="invalid_id_token", description="the answer held no ID token")
        return token

    async def sign_out_url(self, id_token: str | None) -> str:
        """The provider's end_session URL, returning to the portal's front page; the front page if it has none."""
        home = self._settings.public_url.rstrip("/") + "/"
        try:
            result = await self._client.create_logout_url(
                post_logout_redirect_uri=home, id_token_hint=id_token, client_id=self._settings.oidc_client_id
            )
        except RuntimeError:  # no end_session_endpoint in the provider's metadata
            return home
        return result["url"]

    @property
    def callback_url(self) -> str:
        return self._settings.public_url.rstrip("/") + "/auth/callback"
