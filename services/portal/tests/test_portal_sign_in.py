"""Signing in to the portal at the local identity provider (`deploy/local/idp.py`, a real OpenID Connect provider),
both in this process: authorization code with PKCE, state and nonce, the ID token checked, a server-side session
whose cookie is all the browser holds, no way back to another site, and signing out at the provider too."""

from __future__ import annotations

import importlib.util
import re
import sys
import uuid
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import asyncpg
import httpx
import pytest
from asgi_lifespan import LifespanManager
from portal.app import create
from portal.settings import PortalSettings

from tests.keys import PRIVATE, PUBLIC

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
IDP_FILE = ROOT / "deploy" / "local" / "idp.py"
PORTAL, ISSUER = "http://portal.test", "http://idp.test"
if not IDP_FILE.exists():
    pytest.skip("the local identity provider (deploy/local/idp.py) is not in this tree", allow_module_level=True)


def local_idp():
    spec = importlib.util.spec_from_file_location("local_idp", IDP_FILE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


class Hosts(httpx.AsyncBaseTransport):
    def __init__(self, apps: dict) -> None:
        self._transports = {host: httpx.ASGITransport(app=app) for host, app in apps.items()}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.host not in self._transports:
            raise httpx.ConnectError(f"{request.url.host} unreachable", request=request)
        return await self._transports[request.url.host].handle_async_request(request)


@pytest.fixture(scope="module")
async def sign_in(scratch_database, tmp_path_factory):
    """The portal (pages only, no consumer) and the identity provider, with its demo people; the provider's app."""
    keys = tmp_path_factory.mktemp("keys")
    (keys / "private.pem").write_text(PRIVATE)
    (keys / "public.pem").write_text(PUBLIC)
    idp = local_idp()
    provider = idp.Provider(
        issuer=ISSUER,
        directory=idp.Directory.load(IDP_FILE.with_name("people.toml")).registering(
            "portal", "portal-test-secret", [f"{PORTAL}/auth/callback"], [f"{PORTAL}/"]
        ),
        signing=idp.Signing.from_file(keys / "private.pem"),
        access_issuer="https://login.buurtkracht.local",
        access_audience="buurtkracht",
    )
    idp_app = idp.create_app(provider)
    portal = create(
        PortalSettings(
            service_name=f"portal-sign-in-{uuid.uuid4().hex[:6]}",
            database_url=scratch_database,
            jwt_public_key_file=keys / "public.pem",
            process_role="api",
            public_url=PORTAL,
            oidc_issuer=ISSUER,
            oidc_client_secret="portal-test-secret",
            session_secret="sign-in-test",
        ),
        web_transport=Hosts({"idp.test": idp_app}),
    )
    async with LifespanManager(portal.app):
        yield portal, idp_app


def clients(sign_in):
    portal, idp_app = sign_in
    return (
        httpx.AsyncClient(transport=httpx.ASGITransport(app=portal.app), base_url=PORTAL),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=idp_app), base_url=ISSUER),
    )


async def signed_in_as(browser, idp, username: str, password: str, next_path: str) -> httpx.Response:
    """Through the whole flow; the portal's answer to the callback."""
    start = await browser.get("/auth/login", params={"next": next_path})
    assert start.status_code == 302, start.text
    authorize = start.headers["location"]
    asked = parse_qs(urlsplit(authorize).query)
    assert authorize.startswith(f"{ISSUER}/authorize?")
    assert asked["code_challenge_method"] == ["S256"] and asked["code_challenge"] and asked["nonce"] and asked["state"]
    assert asked["redirect_uri"] == [f"{PORTAL}/auth/callback"]
    done = await idp.get(authorize)
    if done.status_code == 200:  # not signed in at the provider yet: its login form
        login = re.search(r'name="login" value="([^"]+)"', done.text).group(1)
        done = await idp.post("/login", data={"login": login, "username": username, "password": password})
    assert done.status_code in (302, 303), done.text
    return await browser.get(done.headers["location"].removeprefix(PORTAL))


async def test_a_person_signs_in_with_pkce_and_the_browser_holds_only_a_session_cookie(sign_in, scratch_database):
    browser, idp = clients(sign_in)
    async with browser, idp:
        back = await signed_in_as(browser, idp, "anna", "anna-lokaal", "/initiatieven/nieuw")
        assert (back.status_code, back.headers["location"]) == (303, "/initiatieven/nieuw")
        cookie = back.headers["set-cookie"]
        assert "bk_session=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie.replace("Lax", "lax")
        page = await browser.get("/initiatieven/nieuw")
        assert page.status_code == 200 and "Anna de Vries" in page.text
        assert "eyJ" not in page.text and all("eyJ" not in value for value in browser.cookies.values())
    connection = await asyncpg.connect(scratch_database)
    try:
        row = await connection.fetchrow("SELECT roles, areas, access_token IS NOT NULL AS held FROM web_sessions")
    finally:
        await connection.close()
    assert (row["roles"], row["areas"], row["held"]) == (["resident"], ["BU03630001"], True)


async def test_a_callback_replayed_or_with_another_state_signs_nobody_in(sign_in):
    browser, idp = clients(sign_in)
    async with browser, idp:
        start = await browser.get("/auth/login", params={"next": "/"})
        state = parse_qs(urlsplit(start.headers["location"]).query)["state"][0]
        forged = await browser.get("/auth/callback", params={"code": "made-up", "state": state + "x"})
        assert forged.status_code == 400
        back = await signed_in_as(browser, idp, "anna", "anna-lokaal", "/")
        assert back.status_code == 303
        replayed = await browser.get("/auth/callback", params={"code": "made-up", "state": state})
        assert replayed.status_code == 400
        async with httpx.AsyncClient(transport=browser._transport, base_url=PORTAL) as stranger:  # no session
            assert (await stranger.get("/auth/callback", params={"code": "x", "state": state})).status_code == 400


async def test_after_signing_in_a_foreign_next_goes_to_the_front_page(sign_in):
    browser, idp = clients(sign_in)
    async with browser, idp:
        for foreign in ("https://evil.example/", "//evil.example/", "/\\evil.example"):
            back = await signed_in_as(browser, idp, "anna", "anna-lokaal", foreign)
            assert (back.status_code, back.headers["location"]) == (303, "/")


async def test_signing_out_ends_the_session_here_and_at_the_provider(sign_in):
    browser, idp = clients(sign_in)
    async with browser, idp:
        await signed_in_as(browser, idp, "anna", "anna-lokaal", "/")
        page = await browser.get("/initiatieven/nieuw")
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        out = await browser.post("/auth/logout", data={"csrf_token": csrf})
        assert out.status_code == 303 and out.headers["location"].startswith(f"{ISSUER}/end_session?")
        assert "id_token_hint=" in out.headers["location"]
        assert (await browser.get("/initiatieven/nieuw")).status_code == 303
