"""The local identity provider: a small OpenID Connect provider for `make run` and the tests. LOCAL ONLY.

Authorization code flow with PKCE (S256) only. A person signs in with a user name and password from
`people.toml`; the client (the portal) redeems the single-use code, authenticating with its secret
(client_secret_basic or client_secret_post) and the code verifier, for

- an ID token: `iss` this provider's issuer, `aud` the client id, `nonce`, `name`, `email` (and `roles`, `areas`);
- an access token exactly as the services expect one (`buurtkracht_kit.tokens.mint`): `iss` the services'
  `BK_JWT_ISSUER`, `aud` `BK_JWT_AUDIENCE`, `sub`, `roles`, `areas`, valid for an hour.

Both are signed with the local key the services already trust (`BK_JWT_PRIVATE_KEY_FILE`); the JWKS publishes its
public half under `kid` = its RFC 7638 thumbprint, so a service may also verify with `BK_JWT_JWKS_URL`.

Invariants: nothing is issued without a valid password; a code is redeemed at most once, within
`CODE_SECONDS`, by the client it was issued to, with the redirect URI and code verifier of its request; the
provider redirects only to a URI registered exactly for the client. Errors follow OAuth 2.0: JSON for /token and
/userinfo, a redirect with `error` from /authorize once the redirect URI is known to be the client's, an error page
before that. State lives in memory: a restart signs everyone out.

    python deploy/local/idp.py serve [--port 8090] [--redirect-uri URI --post-logout-redirect-uri URI]
    python deploy/local/idp.py people        # the demo people, their passwords and roles (a text table)
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import html
import json
import os
import secrets
import sys
import time
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import parse_qsl, unquote_plus, urlencode, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from jwt.algorithms import RSAAlgorithm
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from buurtkracht_kit.tokens import mint

PEOPLE_FILE = Path(__file__).with_name("people.toml")
CODE_SECONDS = 60  # an authorization code is redeemed within this, or never
LOGIN_SECONDS = 15 * 60  # a login form is submitted within this
SESSION_SECONDS = 8 * 3600  # the provider's own sign-in (its cookie) lasts this long
ACCESS_TOKEN_SECONDS = 3600
ID_TOKEN_SECONDS = 600
SESSION_COOKIE = "idp_session"
SCOPES = ("openid", "profile", "email")


@dataclass(frozen=True)
class Client:
    client_id: str
    name: str
    secret: str
    redirect_uris: tuple[str, ...]
    post_logout_redirect_uris: tuple[str, ...]


@dataclass(frozen=True)
class Person:
    username: str
    password: str
    sub: str
    name: str
    email: str
    roles: tuple[str, ...]
    areas: tuple[str, ...]
    about: str = ""


@dataclass(frozen=True)
class AuthorizationRequest:
    """A validated /authorize request, waiting for its person to sign in."""

    client: Client
    redirect_uri: str
    scope: str
    state: str | None
    nonce: str | None
    code_challenge: str
    expires_at: float


@dataclass(frozen=True)
class Grant:
    """What an authorization code stands for."""

    request: AuthorizationRequest
    person: Person
    auth_time: int
    expires_at: float


@dataclass(frozen=True)
class Directory:
    clients: dict[str, Client]
    people: dict[str, Person]  # by user name

    @classmethod
    def load(cls, path: Path) -> Directory:
        document = tomllib.loads(path.read_text())
        clients = {
            client_id: Client(
                client_id=client_id,
                name=entry.get("name", client_id),
                secret=entry["secret"],
                redirect_uris=tuple(entry["redirect_uris"]),
                post_logout_redirect_uris=tuple(entry.get("post_logout_redirect_uris", ())),
            )
            for client_id, entry in document.get("clients", {}).items()
        }
        people = {}
        for entry in document.get("people", []):
            person = Person(**{**entry, "roles": tuple(entry["roles"]), "areas": tuple(entry["areas"])})
            if person.username in people:
                raise ValueError(f"{path}: user name {person.username!r} appears twice")
            people[person.username] = person
        return cls(clients, people)

    def registering(
        self, client_id: str, secret: str | None, redirect_uris: list[str], post_logout_redirect_uris: list[str]
    ) -> Directory:
        """The directory with `client_id` registered with these URIs (and secret) instead of the file's."""
        known = self.clients.get(client_id) or Client(client_id, client_id, "", (), ())
        client = replace(
            known,
            secret=secret or known.secret,
            redirect_uris=tuple(redirect_uris) or known.redirect_uris,
            post_logout_redirect_uris=tuple(post_logout_redirect_uris) or known.post_logout_redirect_uris,
        )
        if not client.secret:
            raise ValueError(f"client {client_id!r} has no secret: give --client-secret")
        return replace(self, clients=self.clients | {client_id: client})


@dataclass(frozen=True)
class Signing:
    private_key_pem: str
    public_key: RSAPublicKey
    public_jwk: dict[str, str]

    @property
    def kid(self) -> str:
        return self.public_jwk["kid"]

    @classmethod
    def from_file(cls, path: Path) -> Signing:
        private_key_pem = path.read_text()
        public = RSAAlgorithm(RSAAlgorithm.SHA256).prepare_key(private_key_pem).public_key()
        jwk = {k: v for k, v in json.loads(RSAAlgorithm.to_jwk(public)).items() if k != "key_ops"}  # "use" says it
        return cls(private_key_pem, public, {**jwk, "kid": thumbprint(jwk), "alg": "RS256", "use": "sig"})


def thumbprint(jwk: dict[str, str]) -> str:
    """RFC 7638 JWK thumbprint of an RSA key: the key id the JWKS and every token header carry."""
    canonical = json.dumps({"e": jwk["e"], "kty": "RSA", "n": jwk["n"]}, separators=(",", ":"), sort_keys=True)
    return _b64url(hashlib.sha256(canonical.encode()).digest())


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def s256(verifier: str) -> str:
    return _b64url(hashlib.sha256(verifier.encode("ascii")).digest())


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


class OAuthError(Exception):
    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error, self.description, self.status = error, description, status


@dataclass
class Provider:
    """The provider's state: who may sign in, what waits for a login, which codes and sessions are live."""

    issuer: str
    directory: Directory
    signing: Signing
    access_issuer: str
    access_audience: str
    logins: dict[str, AuthorizationRequest] = field(default_factory=dict)
    codes: dict[str, Grant] = field(default_factory=dict)
    sessions: dict[str, tuple[Person, int, float]] = field(default_factory=dict)  # id -> person, auth_time, expiry

    def forget_expired(self) -> None:
        now = time.time()
        for table in (self.logins, self.codes):
            for key in [k for k, v in table.items() if v.expires_at < now]:
                del table[key]
        for key in [k for k, (_, _, expires_at) in self.sessions.items() if expires_at < now]:
            del self.sessions[key]

    def signed_in(self, request: Request) -> tuple[Person, int] | None:
        entry = self.sessions.get(request.cookies.get(SESSION_COOKIE, ""))
        if entry is None or entry[2] < time.time():
            return None
        return entry[0], entry[1]

    def issue_code(self, authorization: AuthorizationRequest, person: Person, auth_time: int) -> str:
        self.forget_expired()
        code = secrets.token_urlsafe(32)
        self.codes[code] = Grant(authorization, person, auth_time, time.time() + CODE_SECONDS)
        return code

    def redeem(self, code: str, client: Client, redirect_uri: str | None, verifier: str | None) -> Grant:
        """The grant of `code`, which is spent by this call whatever its outcome (a code is tried once)."""
        grant = self.codes.pop(code, None)
        if grant is None or grant.expires_at < time.time():
            raise OAuthError("invalid_grant", "the code is unknown, expired or already used")
        if grant.request.client.client_id != client.client_id:
            raise OAuthError("invalid_grant", "the code was issued to another client")
        if redirect_uri != grant.request.redirect_uri:
            raise OAuthError("invalid_grant", "redirect_uri differs from the authorization request's")
        if not verifier:
            raise OAuthError("invalid_request", "code_verifier is required")
        if not (43 <= len(verifier) <= 128) or not _same(s256(verifier), grant.request.code_challenge):
            raise OAuthError("invalid_grant", "code_verifier does not match the code_challenge")
        return grant

    def tokens(self, grant: Grant) -> dict[str, object]:
        person, now = grant.person, int(time.time())
        access_token = mint(
            self.signing.private_key_pem,
            issuer=self.access_issuer,
            audience=self.access_audience,
            subject=person.sub,
            roles=list(person.roles),
            areas=list(person.areas),
            ttl_seconds=ACCESS_TOKEN_SECONDS,
            key_id=self.signing.kid,
        )
        claims = {
            "iss": self.issuer,
            "aud": grant.request.client.client_id,
            "sub": person.sub,
            "iat": now,
            "exp": now + ID_TOKEN_SECONDS,
            "auth_time": grant.auth_time,
            "at_hash": _b64url(hashlib.sha256(access_token.encode()).digest()[:16]),
            **self.profile(person),
        }
        if grant.request.nonce is not None:
            claims["nonce"] = grant.request.nonce
        id_token = jwt.encode(
            claims, self.signing.private_key_pem, algorithm="RS256", headers={"kid": self.signing.kid}
        )
        return {
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": ACCESS_TOKEN_SECONDS,
            "id_token": id_token,
            "scope": grant.request.scope,
        }

    @staticmethod
    def profile(person: Person) -> dict[str, object]:
        return {
            "name": person.name,
            "preferred_username": person.username,
            "email": person.email,
            "email_verified": True,
            "roles": list(person.roles),
            "areas": list(person.areas),
        }

    def discovery(self) -> dict[str, object]:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "userinfo_endpoint": f"{self.issuer}/userinfo",
            "jwks_uri": f"{self.issuer}/jwks",
            "end_session_endpoint": f"{self.issuer}/end_session",
            "scopes_supported": list(SCOPES),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "code_challenge_methods_supported": ["S256"],
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "name", "email", "roles"],
            "authorization_response_iss_parameter_supported": True,
            "ui_locales_supported": ["nl"],
        }


# -- HTTP ------------------------------------------------------------------------------------------


async def _parameters(request: Request) -> dict[str, str]:
    """Query parameters (GET) or the url-encoded form (POST); a parameter given twice is refused (RFC 6749 3.1)."""
    if request.method == "POST":
        if request.headers.get("content-type", "").partition(";")[0].strip() != "application/x-www-form-urlencoded":
            raise OAuthError("invalid_request", "the body must be application/x-www-form-urlencoded")
        pairs = parse_qsl((await request.body()).decode(errors="replace"), keep_blank_values=True)
    else:
        pairs = list(request.query_params.multi_items())
    parameters: dict[str, str] = {}
    for name, value in pairs:
        if name in parameters:
            raise OAuthError("invalid_request", f"{name} is given more than once")
        if value != "":
            parameters[name] = value
    return parameters


def _with_query(uri: str, parameters: dict[str, str | None]) -> str:
    query = urlencode({k: v for k, v in parameters.items() if v is not None})
    return f"{uri}{'&' if urlsplit(uri).query else '?'}{query}"


def _json_error(error: OAuthError, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(
        {"error": error.error, "error_description": error.description},
        status_code=error.status,
        headers={"Cache-Control": "no-store", "Pragma": "no-cache", **(headers or {})},
    )


PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}

STYLE = """
body { font-family: system-ui, sans-serif; font-size: 1.125rem; line-height: 1.5; color: #1a1a1a; margin: 0; }
.lokaal { background: #fff4ce; border-bottom: 2px solid #8a6d00; margin: 0; padding: .5rem 1rem; }
main { max-width: 28rem; margin: 2rem auto; padding: 0 1rem; }
label { display: block; font-weight: 700; margin-top: 1rem; }
input { display: block; width: 100%; box-sizing: border-box; font: inherit; padding: .5rem;
        border: 2px solid #4b4b4b; border-radius: 4px; margin-top: .25rem; }
input[aria-invalid="true"] { border-color: #b00020; }
button { margin-top: 1.5rem; font: inherit; font-weight: 700; padding: .6rem 1.5rem; color: #fff;
         background: #004d99; border: 2px solid #004d99; border-radius: 4px; cursor: pointer; }
:focus-visible { outline: 3px solid #1a1a1a; outline-offset: 2px; box-shadow: 0 0 0 6px #ffbf47; }
.fout { border-left: 6px solid #b00020; background: #fdecee; padding: .5rem 1rem; margin: 1rem 0; }
.fout h2 { font-size: 1.125rem; margin: 0; }
"""


def _page(title: str, body: str, status: int = 200, headers: dict[str, str] | None = None) -> HTMLResponse:
    document = f"""<!doctype html>
<html lang="nl">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)} – Buurtkracht (lokaal)</title>
<style>{STYLE}</style>
</head>
<body>
<header><p class="lokaal">Lokale testomgeving: alleen voor ontwikkeling, met demo-accounts.
Vul hier nooit echte gegevens in.</p></header>
<main id="inhoud">
{body}
</main>
</body>
</html>
"""
    return HTMLResponse(document, status_code=status, headers={**PAGE_HEADERS, **(headers or {})})


def _error_page(description: str, status: int = 400) -> HTMLResponse:
    body = f"""<h1>Er ging iets mis</h1>
<div class="fout" role="alert"><p>{html.escape(description)}</p></div>
<p>U wordt niet teruggestuurd naar de website die u hierheen stuurde, omdat niet vaststaat dat die website
bij dit adres hoort. Ga terug en probeer het opnieuw.</p>"""
    return _page("Foutmelding", body, status)


def _login_page(provider: Provider, login_id: str, username: str = "", failed: bool = False) -> HTMLResponse:
    authorization = provider.logins[login_id]
    error = (
        """<div class="fout" role="alert" id="fout" tabindex="-1">
<h2>Inloggen is niet gelukt</h2>
<p>De gebruikersnaam of het wachtwoord klopt niet. Controleer ze en probeer het opnieuw.</p>
</div>"""
        if failed
        else ""
    )
    invalid = ' aria-invalid="true" aria-describedby="fout"' if failed else ""
    body = f"""<h1>Inloggen bij {html.escape(authorization.client.name)}</h1>
{error}
<form method="post" action="/login">
<input type="hidden" name="login" value="{html.escape(login_id)}">
<label for="username">Gebruikersnaam</label>
<input id="username" name="username" type="text" autocomplete="username" autocapitalize="none" spellcheck="false"
 required value="{html.escape(username)}"{invalid}>
<label for="password">Wachtwoord</label>
<input id="password" name="password" type="password" autocomplete="current-password" required{invalid}>
<button type="submit">Inloggen</button>
</form>"""
    return _page("Inloggen", body, 400 if failed else 200)


def _client_and_redirect(provider: Provider, parameters: dict[str, str]) -> tuple[Client, str]:
    """The client and its redirect URI, exactly as registered; otherwise the provider must not redirect."""
    client = provider.directory.clients.get(parameters.get("client_id", ""))
    if client is None:
        raise OAuthError("invalid_client", "Deze website is bij deze inlogdienst niet bekend (onbekende client_id).")
    redirect_uri = parameters.get("redirect_uri", "")
    if redirect_uri not in client.redirect_uris:
        raise OAuthError(
            "invalid_request", "Het terugstuuradres (redirect_uri) is niet voor deze website geregistreerd."
        )
    return client, redirect_uri


def _authorization(client: Client, redirect_uri: str, parameters: dict[str, str]) -> AuthorizationRequest:
    if parameters.get("response_type") != "code":
        raise OAuthError("unsupported_response_type", "only response_type=code is supported")
    scope = parameters.get("scope", "")
    if "openid" not in scope.split():
        raise OAuthError("invalid_scope", "the scope must include openid")
    challenge = parameters.get("code_challenge")
    if not challenge:
        raise OAuthError("invalid_request", "code_challenge is required (PKCE)")
    if parameters.get("code_challenge_method") != "S256":
        raise OAuthError("invalid_request", "code_challenge_method must be S256")
    if len(challenge) != 43:
        raise OAuthError("invalid_request", "code_challenge must be a base64url SHA-256 digest")
    return AuthorizationRequest(
        client=client,
        redirect_uri=redirect_uri,
        scope=" ".join(s for s in scope.split() if s in SCOPES),
        state=parameters.get("state"),
        nonce=parameters.get("nonce"),
        code_challenge=challenge,
        expires_at=time.time() + LOGIN_SECONDS,
    )


def _to_client(provider: Provider, authorization: AuthorizationRequest, **parameters: str | None) -> RedirectResponse:
    location = _with_query(
        authorization.redirect_uri, {**parameters, "state": authorization.state, "iss": provider.issuer}
    )
    return RedirectResponse(location, status_code=303, headers={"Cache-Control": "no-store"})


def _signed_in_redirect(provider: Provider, authorization: AuthorizationRequest, person: Person, auth_time: int):
    return _to_client(provider, authorization, code=provider.issue_code(authorization, person, auth_time))


def create_app(provider: Provider) -> Starlette:
    async def discovery(request: Request) -> Response:
        return JSONResponse(provider.discovery())

    async def jwks(request: Request) -> Response:
        return JSONResponse({"keys": [provider.signing.public_jwk]})

    async def authorize(request: Request) -> Response:
        try:
            parameters = await _parameters(request)
        except OAuthError as error:
            return _error_page(error.description)
        try:
            client, redirect_uri = _client_and_redirect(provider, parameters)
        except OAuthError as error:
            return _error_page(error.description)
        try:
            authorization = _authorization(client, redirect_uri, parameters)
        except OAuthError as error:
            state = parameters.get("state")
            location = _with_query(
                redirect_uri,
                {"error": error.error, "error_description": error.description, "state": state, "iss": provider.issuer},
            )
            return RedirectResponse(location, status_code=303)
        prompt = set(parameters.get("prompt", "").split())
        signed_in = provider.signed_in(request)
        if signed_in and "login" not in prompt:
            return _signed_in_redirect(provider, authorization, *signed_in)
        if "none" in prompt:
            return _to_client(provider, authorization, error="login_required", error_description="nobody is signed in")
        provider.forget_expired()
        login_id = secrets.token_urlsafe(24)
        provider.logins[login_id] = authorization
        return _login_page(provider, login_id)

    async def login(request: Request) -> Response:
        try:
            form = await _parameters(request)
        except OAuthError as error:
            return _error_page(error.description)
        login_id = form.get("login", "")
        authorization = provider.logins.get(login_id)
        if authorization is None or authorization.expires_at < time.time():
            return _error_page("Deze inlogpoging is verlopen of onbekend. Ga terug naar de website en log opnieuw in.")
        username, password = form.get("username", "").strip(), form.get("password", "")
        person = provider.directory.people.get(username)
        if person is None or not _same(password, person.password):
            return _login_page(provider, login_id, username, failed=True)
        del provider.logins[login_id]
        session_id, auth_time = secrets.token_urlsafe(32), int(time.time())
        provider.sessions[session_id] = (person, auth_time, time.time() + SESSION_SECONDS)
        response = _signed_in_redirect(provider, authorization, person, auth_time)
        response.set_cookie(SESSION_COOKIE, session_id, max_age=SESSION_SECONDS, httponly=True, samesite="lax")
        return response

    async def token(request: Request) -> Response:
        basic = request.headers.get("authorization", "")
        challenge = {"WWW-Authenticate": 'Basic realm="buurtkracht-local"'} if basic else None
        try:
            form = await _parameters(request)
            client = _authenticated_client(provider, basic, form)
        except OAuthError as error:
            return _json_error(error, challenge if error.status == 401 else None)
        try:
            if form.get("grant_type") != "authorization_code":
                raise OAuthError("unsupported_grant_type", "only grant_type=authorization_code is supported")
            if "code" not in form:
                raise OAuthError("invalid_request", "code is required")
            grant = provider.redeem(form["code"], client, form.get("redirect_uri"), form.get("code_verifier"))
        except OAuthError as error:
            return _json_error(error)
        return JSONResponse(provider.tokens(grant), headers={"Cache-Control": "no-store", "Pragma": "no-cache"})

    async def userinfo(request: Request) -> Response:
        scheme, _, access_token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not access_token:
            return Response(status_code=401, headers={"WWW-Authenticate": 'Bearer realm="buurtkracht-local"'})
        try:
            claims = jwt.decode(
                access_token,
                provider.signing.public_key,
                algorithms=["RS256"],
                audience=provider.access_audience,
                issuer=provider.access_issuer,
                options={"require": ["sub", "exp"]},
            )
        except jwt.PyJWTError as error:
            return _json_error(
                OAuthError("invalid_token", str(error), 401),
                {"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        person = next((p for p in provider.directory.people.values() if p.sub == claims["sub"]), None)
        if person is None:
            return _json_error(OAuthError("invalid_token", "the token's subject is not known here", 401))
        return JSONResponse({"sub": person.sub, **provider.profile(person)}, headers={"Cache-Control": "no-store"})

    async def end_session(request: Request) -> Response:
        try:
            parameters = await _parameters(request)
            client = _logout_client(provider, parameters)
        except OAuthError as error:
            return _error_page(error.description)
        target = parameters.get("post_logout_redirect_uri")
        if target is not None and (client is None or target not in client.post_logout_redirect_uris):
            return _error_page(
                "Het adres om na het uitloggen naar terug te gaan is niet voor deze website geregistreerd."
            )
        provider.sessions.pop(request.cookies.get(SESSION_COOKIE, ""), None)
        if target is not None:
            response: Response = RedirectResponse(
                _with_query(target, {"state": parameters.get("state")}), status_code=303
            )
        else:
            response = _page("Uitgelogd", "<h1>U bent uitgelogd</h1>\n<p>U kunt dit venster sluiten.</p>")
        response.delete_cookie(SESSION_COOKIE, httponly=True, samesite="lax")
        return response

    return Starlette(
        routes=[
            Route("/.well-known/openid-configuration", discovery),
            Route("/jwks", jwks),
            Route("/authorize", authorize, methods=["GET", "POST"]),
            Route("/login", login, methods=["POST"]),
            Route("/token", token, methods=["POST"]),
            Route("/userinfo", userinfo, methods=["GET", "POST"]),
            Route("/end_session", end_session, methods=["GET", "POST"]),
        ]
    )


def _authenticated_client(provider: Provider, basic: str, form: dict[str, str]) -> Client:
    """The client, by client_secret_basic or client_secret_post (exactly one of them)."""
    scheme, _, credentials = basic.partition(" ")
    if basic:
        if scheme.lower() != "basic" or "client_secret" in form:
            raise OAuthError("invalid_client", "authenticate with one method: HTTP Basic or client_secret", 401)
        try:
            client_id, _, secret = base64.b64decode(credentials, validate=True).decode().partition(":")
        except ValueError as error:
            raise OAuthError("invalid_client", "malformed HTTP Basic credentials", 401) from error
        client_id, secret = unquote_plus(client_id), unquote_plus(secret)  # RFC 6749 2.3.1
        if form.get("client_id", client_id) != client_id:
            raise OAuthError("invalid_client", "client_id differs from the authenticated client", 401)
    else:
        client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
    client = provider.directory.clients.get(client_id)
    if client is None or not secret or not _same(secret, client.secret):
        raise OAuthError("invalid_client", "client authentication failed", 401)
    return client


def _logout_client(provider: Provider, parameters: dict[str, str]) -> Client | None:
    """The client asking for the logout: by its id_token_hint (which this provider signed) and/or client_id."""
    client_id = parameters.get("client_id")
    if "id_token_hint" in parameters:
        try:
            claims = jwt.decode(
                parameters["id_token_hint"],
                provider.signing.public_key,
                algorithms=["RS256"],
                issuer=provider.issuer,
                options={"verify_exp": False, "verify_aud": False, "require": ["aud", "sub"]},
            )
        except jwt.PyJWTError as error:
            raise OAuthError("invalid_request", "De id_token_hint is niet van deze inlogdienst.") from error
        if client_id is not None and claims["aud"] != client_id:
            raise OAuthError("invalid_request", "De id_token_hint hoort bij een andere website dan client_id.")
        client_id = claims["aud"]
    if client_id is None:
        return None
    client = provider.directory.clients.get(client_id)
    if client is None:
        raise OAuthError("invalid_client", "Deze website is bij deze inlogdienst niet bekend (onbekende client_id).")
    return client


# -- command line ----------------------------------------------------------------------------------


def people_table(directory: Directory) -> str:
    rows = [("gebruikersnaam", "wachtwoord", "naam", "rollen", "gebieden", "wie")]
    rows += [
        (p.username, p.password, p.name, ",".join(p.roles), ",".join(p.areas), p.about)
        for p in directory.people.values()
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, [*widths, 0], strict=True)).rstrip() for row in rows
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--people", type=Path, default=PEOPLE_FILE, help="people and clients (TOML)")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the identity provider")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8090)
    serve.add_argument("--issuer", help="this provider's issuer URL (default http://HOST:PORT)")
    serve.add_argument(
        "--private-key",
        type=Path,
        default=Path(os.environ.get("BK_JWT_PRIVATE_KEY_FILE", ".local/keys/jwt-private.pem")),
        help="the signing key (PEM; default $BK_JWT_PRIVATE_KEY_FILE)",
    )
    serve.add_argument("--client-id", default="portal", help="the client --redirect-uri etc. register")
    serve.add_argument("--client-secret", help="its secret, instead of the file's")
    serve.add_argument("--redirect-uri", action="append", default=[], help="its redirect URIs, instead of the file's")
    serve.add_argument(
        "--post-logout-redirect-uri", action="append", default=[], help="its post-logout URIs, instead of the file's"
    )
    commands.add_parser("people", help="print who can sign in, with their passwords")
    args = parser.parse_args(argv)
    directory = Directory.load(args.people)
    if args.command == "people":
        print(people_table(directory))
        return
    if args.client_secret or args.redirect_uri or args.post_logout_redirect_uri:
        directory = directory.registering(
            args.client_id, args.client_secret, args.redirect_uri, args.post_logout_redirect_uri
        )
    if not args.private_key.exists():
        sys.exit(f"{args.private_key} does not exist; run `buurtkracht keys` (make install) first")
    import uvicorn

    provider = Provider(
        issuer=(args.issuer or f"http://{args.host}:{args.port}").rstrip("/"),
        directory=directory,
        signing=Signing.from_file(args.private_key),
        access_issuer=os.environ.get("BK_JWT_ISSUER", "https://login.buurtkracht.local"),
        access_audience=os.environ.get("BK_JWT_AUDIENCE", "buurtkracht"),
    )
    uvicorn.run(create_app(provider), host=args.host, port=args.port, log_level="info", server_header=False)


if __name__ == "__main__":
    main()
