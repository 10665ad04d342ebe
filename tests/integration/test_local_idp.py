"""The local identity provider (`deploy/local/idp.py`) as a client meets it: a process of its own, spoken to over
HTTP. A person signs in through the login form (authorization code + PKCE S256), the client redeems the code for
an ID token and an access token, and a real service (notifications, on the stack's PostgreSQL) takes that access
token unchanged, with the PEM key as `make run` configures it and with the provider's JWKS as on Kubernetes.
Then the refusals: each one issues nothing."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import importlib.util
import re
import secrets
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest
from asgi_lifespan import LifespanManager
from notifications.app import create as create_notifications
from notifications.settings import NotificationsSettings

from tests.keys import PRIVATE, PUBLIC
from tests.stack import KAFKA
from tests.system import ROOT, Endpoints, Journey, free_port, journey_module

pytestmark = pytest.mark.integration

SERVICES_ISSUER, AUDIENCE = "https://login.buurtkracht.local", "buurtkracht"
SECRET = "portal-local-secret"
_spec = importlib.util.spec_from_file_location("local_idp", ROOT / "deploy" / "local" / "idp.py")
local_idp = sys.modules["local_idp"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(local_idp)


@dataclass(frozen=True)
class Idp:
    url: str
    redirect_uri: str
    post_logout_redirect_uri: str


@dataclass(frozen=True)
class Request:
    """One authorization request's secrets, as the client keeps them."""

    verifier: str
    state: str
    nonce: str

    @classmethod
    def new(cls) -> Request:
        return cls(secrets.token_urlsafe(48), secrets.token_urlsafe(12), secrets.token_urlsafe(12))

    @property
    def challenge(self) -> str:
        return base64.urlsafe_b64encode(hashlib.sha256(self.verifier.encode()).digest()).rstrip(b"=").decode()


@pytest.fixture(scope="module")
async def idp(tmp_path_factory) -> AsyncIterator[Idp]:
    """The provider as `make run` starts it, with the tests' key, and the portal registered on a port of its own
    (where nothing listens: the tests read the redirects, they do not follow them there)."""
    keys = tmp_path_factory.mktemp("idp-keys")
    (keys / "private.pem").write_text(PRIVATE)
    port, portal = free_port(), f"http://127.0.0.1:{free_port()}"
    log = (tmp_path_factory.mktemp("idp-logs") / "idp.log").open("wb")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "deploy/local/idp.py",
        "serve",
        f"--port={port}",
        f"--private-key={keys / 'private.pem'}",
        f"--redirect-uri={portal}/auth/callback",
        f"--post-logout-redirect-uri={portal}/",
        cwd=ROOT,
        stdout=log,
        stderr=log,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient() as http:
            for _ in range(200):
                try:
                    if (await http.get(f"{url}/.well-known/openid-configuration")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert process.returncode is None, "the identity provider exited"
                await asyncio.sleep(0.1)
            else:
                pytest.fail("the identity provider did not answer")
        yield Idp(url, f"{portal}/auth/callback", f"{portal}/")
    finally:
        process.terminate()
        await process.wait()
        log.close()


@pytest.fixture
async def browser() -> AsyncIterator[httpx.AsyncClient]:
    """A person's browser: keeps cookies, does not follow redirects (the tests read them)."""
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


def authorize_params(idp: Idp, request: Request, **changes: str) -> dict[str, str]:
    return {
        "response_type": "code",
        "client_id": "portal",
        "redirect_uri": idp.redirect_uri,
        "scope": "openid profile email",
        "state": request.state,
        "nonce": request.nonce,
        "code_challenge": request.challenge,
        "code_challenge_method": "S256",
    } | changes


def login_id(page: httpx.Response) -> str:
    found = re.search(r'name="login" value="([^"]+)"', page.text)
    assert found, page.text
    return found.group(1)


async def sign_in(browser: httpx.AsyncClient, idp: Idp, request: Request, username: str, password: str) -> str:
    """Open the login form and submit it; the code the provider sends the browser back with."""
    form = await browser.get(f"{idp.url}/authorize", params=authorize_params(idp, request))
    assert form.status_code == 200, form.text
    answer = await browser.post(
        f"{idp.url}/login", data={"login": login_id(form), "username": username, "password": password}
    )
    return code_from(idp, request, answer)


def code_from(idp: Idp, request: Request, answer: httpx.Response) -> str:
    assert answer.status_code == 303, answer.text
    location = urlsplit(answer.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == idp.redirect_uri
    query = parse_qs(location.query)
    assert query["state"] == [request.state] and query["iss"] == [idp.url]
    return query["code"][0]


async def redeem(
    idp: Idp, code: str, verifier: str, *, secret: str = SECRET, post: bool = False, redirect_uri: str | None = None
) -> httpx.Response:
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri or idp.redirect_uri}
    form["code_verifier"] = verifier
    async with httpx.AsyncClient() as client:
        if post:
            return await client.post(f"{idp.url}/token", data=form | {"client_id": "portal", "client_secret": secret})
        return await client.post(f"{idp.url}/token", data=form, auth=("portal", secret))


async def jwks(idp: Idp) -> jwt.PyJWKSet:
    async with httpx.AsyncClient() as client:
        return jwt.PyJWKSet.from_dict((await client.get(f"{idp.url}/jwks")).json())


@pytest.mark.parametrize("key_source", ["public_key_file", "jwks_url"])
async def test_a_resident_signs_in_with_pkce_and_a_service_takes_the_access_token_unchanged(
    idp: Idp, browser: httpx.AsyncClient, scratch_database: str, tmp_path: Path, key_source: str
) -> None:
    async with httpx.AsyncClient() as client:
        discovery = (await client.get(f"{idp.url}/.well-known/openid-configuration")).json()
    assert discovery["issuer"] == idp.url
    assert discovery["code_challenge_methods_supported"] == ["S256"]
    assert discovery["token_endpoint"] == f"{idp.url}/token"
    request = Request.new()

    code = await sign_in(browser, idp, request, "anna", "anna-lokaal")
    answer = await redeem(idp, code, request.verifier)

    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    tokens = answer.json()
    assert tokens["token_type"] == "Bearer" and tokens["expires_in"] == 3600
    key_set = await jwks(idp)
    id_token = tokens["id_token"]
    id_key = key_set[jwt.get_unverified_header(id_token)["kid"]]
    identity = jwt.decode(id_token, id_key.key, algorithms=["RS256"], audience="portal", issuer=idp.url)
    assert (identity["sub"], identity["nonce"]) == ("r-anna-demo", request.nonce)
    assert (identity["name"], identity["email"]) == ("Anna de Vries", "anna-demo@example.nl")
    access_key = key_set[jwt.get_unverified_header(tokens["access_token"])["kid"]]
    access = jwt.decode(
        tokens["access_token"], access_key.key, algorithms=["RS256"], audience=AUDIENCE, issuer=SERVICES_ISSUER
    )
    assert (access["sub"], access["roles"], access["areas"]) == ("r-anna-demo", ["resident"], ["BU03630001"])
    assert access["exp"] - access["iat"] == 3600
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    async with httpx.AsyncClient() as client:
        userinfo = await client.get(f"{idp.url}/userinfo", headers=bearer)
    assert userinfo.json()["sub"] == "r-anna-demo" and userinfo.json()["email"] == "anna-demo@example.nl"

    (tmp_path / "public.pem").write_text(PUBLIC)
    trust = {"jwt_public_key_file": tmp_path / "public.pem"} if key_source == "public_key_file" else {}
    trust |= {"jwt_jwks_url": f"{idp.url}/jwks"} if key_source == "jwks_url" else {}
    service = create_notifications(
        NotificationsSettings(database_url=scratch_database, kafka_bootstrap_servers=KAFKA, process_role="api", **trust)
    )
    async with (
        LifespanManager(service.app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=service.app), base_url="http://test") as notifications,
    ):
        put = await notifications.put(
            "/api/v1/contact-details/me", headers=bearer, json={"email": identity["email"], "language": "nl"}
        )
        assert put.status_code == 200, put.text
        read = await notifications.get("/api/v1/contact-details/me", headers=bearer)
        assert read.json() == {"email": "anna-demo@example.nl", "language": "nl"}
        forged = await notifications.get("/api/v1/contact-details/me", headers={"Authorization": f"Bearer {id_token}"})
        assert forged.status_code == 401  # the ID token is for the portal, not the services


async def test_client_secret_post_also_authenticates_the_client(idp: Idp, browser: httpx.AsyncClient) -> None:
    request = Request.new()
    code = await sign_in(browser, idp, request, "wijkcoordinator", "wijkcoordinator-lokaal")

    answer = await redeem(idp, code, request.verifier, post=True)

    assert answer.status_code == 200, answer.text
    access = jwt.decode(answer.json()["access_token"], options={"verify_signature": False})
    assert (access["sub"], access["roles"], access["areas"]) == ("o-wijkcoordinator-demo", ["official"], ["WK036300"])


async def test_a_wrong_password_shows_the_form_again_with_an_error_and_issues_nothing(
    idp: Idp, browser: httpx.AsyncClient
) -> None:
    request = Request.new()
    form = await browser.get(f"{idp.url}/authorize", params=authorize_params(idp, request))
    assert '<html lang="nl">' in form.text
    assert '<label for="username">Gebruikersnaam</label>' in form.text
    assert '<label for="password">Wachtwoord</label>' in form.text

    again = await browser.post(
        f"{idp.url}/login", data={"login": login_id(form), "username": "anna", "password": "bas-lokaal"}
    )

    assert again.status_code == 400 and "location" not in again.headers
    assert "set-cookie" not in again.headers
    assert 'role="alert"' in again.text and "Inloggen is niet gelukt" in again.text
    assert 'value="anna" aria-invalid="true"' in again.text
    unknown = await browser.post(
        f"{idp.url}/login", data={"login": login_id(again), "username": "niemand", "password": "anna-lokaal"}
    )
    assert unknown.status_code == 400 and "Inloggen is niet gelukt" in unknown.text
    right = await browser.post(
        f"{idp.url}/login", data={"login": login_id(unknown), "username": "anna", "password": "anna-lokaal"}
    )
    assert code_from(idp, request, right)


async def test_a_redirect_uri_not_registered_gets_an_error_page_and_no_redirect(
    idp: Idp, browser: httpx.AsyncClient
) -> None:
    request = Request.new()
    for wrong in (
        {"redirect_uri": "https://elders.example/auth/callback"},
        {"redirect_uri": idp.redirect_uri + "/"},  # exact match only
        {"client_id": "onbekend"},
    ):
        answer = await browser.get(f"{idp.url}/authorize", params=authorize_params(idp, request, **wrong))

        assert answer.status_code == 400 and "location" not in answer.headers, wrong
        assert "Er ging iets mis" in answer.text and 'name="password"' not in answer.text

    without_pkce = authorize_params(idp, request)
    del without_pkce["code_challenge"]
    answer = await browser.get(f"{idp.url}/authorize", params=without_pkce)
    assert answer.status_code == 303
    query = parse_qs(urlsplit(answer.headers["location"]).query)
    assert query["error"] == ["invalid_request"] and query["state"] == [request.state] and "code" not in query
    plain = await browser.get(
        f"{idp.url}/authorize", params=authorize_params(idp, request, code_challenge_method="plain")
    )
    assert parse_qs(urlsplit(plain.headers["location"]).query)["error"] == ["invalid_request"]


async def test_a_code_is_redeemed_once_only(idp: Idp, browser: httpx.AsyncClient) -> None:
    request = Request.new()
    code = await sign_in(browser, idp, request, "bas", "bas-lokaal")
    assert (await redeem(idp, code, request.verifier)).status_code == 200

    again = await redeem(idp, code, request.verifier)

    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    assert "access_token" not in again.json()


async def test_a_wrong_code_verifier_is_refused_and_spends_the_code(idp: Idp, browser: httpx.AsyncClient) -> None:
    request = Request.new()
    code = await sign_in(browser, idp, request, "dirk", "dirk-lokaal")

    wrong = await redeem(idp, code, Request.new().verifier)

    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
    assert (await redeem(idp, code, request.verifier)).json()["error"] == "invalid_grant"
    other = Request.new()
    code = code_from(idp, other, await browser.get(f"{idp.url}/authorize", params=authorize_params(idp, other)))
    assert (await redeem(idp, code, other.verifier, redirect_uri=idp.post_logout_redirect_uri)).status_code == 400


async def test_a_wrong_client_secret_is_refused_and_the_code_stays_the_clients(
    idp: Idp, browser: httpx.AsyncClient
) -> None:
    request = Request.new()
    code = await sign_in(browser, idp, request, "cem", "cem-lokaal")

    basic = await redeem(idp, code, request.verifier, secret="geraden")
    posted = await redeem(idp, code, request.verifier, secret="geraden", post=True)

    assert basic.status_code == 401 and basic.json()["error"] == "invalid_client"
    assert basic.headers["www-authenticate"].startswith("Basic")
    assert posted.status_code == 401 and posted.json()["error"] == "invalid_client"
    assert (await redeem(idp, code, request.verifier)).status_code == 200


async def test_logout_returns_only_to_a_registered_address_and_ends_the_sign_in(
    idp: Idp, browser: httpx.AsyncClient
) -> None:
    request = Request.new()
    code = await sign_in(browser, idp, request, "regiegroep1", "regiegroep1-lokaal")
    id_token = (await redeem(idp, code, request.verifier)).json()["id_token"]
    silently = await browser.get(f"{idp.url}/authorize", params=authorize_params(idp, request))
    assert code_from(idp, request, silently)  # signed in at the provider: no form the second time

    refused = await browser.get(
        f"{idp.url}/end_session",
        params={"id_token_hint": id_token, "post_logout_redirect_uri": "https://elders.example/", "state": "s"},
    )

    assert refused.status_code == 400 and "location" not in refused.headers
    assert code_from(idp, request, await browser.get(f"{idp.url}/authorize", params=authorize_params(idp, request)))
    done = await browser.get(
        f"{idp.url}/end_session",
        params={"id_token_hint": id_token, "post_logout_redirect_uri": idp.post_logout_redirect_uri, "state": "s"},
    )
    assert done.status_code == 303 and done.headers["location"] == f"{idp.post_logout_redirect_uri}?state=s"
    form = await browser.get(f"{idp.url}/authorize", params=authorize_params(idp, request))
    assert form.status_code == 200 and 'name="password"' in form.text


async def test_the_people_who_can_sign_in_are_the_journeys_demo_people(tmp_path: Path) -> None:
    """Whoever signs in gets the `sub`, roles and areas of the tokens `journey.py demo-data` loads data with."""
    (tmp_path / "private.pem").write_text(PRIVATE)
    journey = Journey(Endpoints(private_key=tmp_path / "private.pem"), run="demo")
    buurten = journey_module.BUURTEN
    as_the_journey_signs_in = {
        "anna": journey.resident("anna", buurten[1]),
        "bas": journey.resident("bas", buurten[2]),
        "dirk": journey.resident("dirk", buurten[2]),
        "cem": journey.resident("cem", buurten[0]),
        "wijkcoordinator": journey.official(),
        "regiegroep1": journey.steering(1),
        "regiegroep2": journey.steering(2),
        "beheerder": journey.admin(),
    }
    await journey.close()

    people = local_idp.Directory.load(local_idp.PEOPLE_FILE).people

    assert set(people) == set(as_the_journey_signs_in)
    for username, headers in as_the_journey_signs_in.items():
        claims = jwt.decode(headers["Authorization"].removeprefix("Bearer "), options={"verify_signature": False})
        person = people[username]
        assert (person.sub, list(person.roles), list(person.areas)) == (claims["sub"], claims["roles"], claims["areas"])
    assert {"resident", "official", "steering_group"} <= {role for p in people.values() for role in p.roles}
