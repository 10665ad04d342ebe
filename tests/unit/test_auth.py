"""Bearer tokens: only RS256 tokens signed by the configured key, for our issuer and audience, are accepted."""

import json
import threading
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from jwt.algorithms import RSAAlgorithm

from buurtkracht_kit.auth import JWKS_LIFESPAN_SECONDS, LEEWAY_SECONDS, Principal, Role, TokenVerifier, mint
from buurtkracht_kit.problems import Problem

from ..keys import PRIVATE, PUBLIC, pem_pair

pytestmark = pytest.mark.unit

ISSUER, AUDIENCE = "https://login.test", "buurtkracht"


OTHER_PRIVATE, _ = pem_pair()


@pytest.fixture
def verifier(tmp_path):
    path = tmp_path / "public.pem"
    path.write_text(PUBLIC)
    return TokenVerifier(issuer=ISSUER, audience=AUDIENCE, public_key_file=path)


def token(private=PRIVATE, **overrides):
    args = dict(issuer=ISSUER, audience=AUDIENCE, subject="r-123", roles=["resident"], areas=["BU03630001"])
    return mint(private, **(args | overrides))


def test_a_valid_token_names_the_caller_roles_and_areas(verifier):
    principal = verifier.verify(token())
    assert principal == Principal("r-123", frozenset({Role.RESIDENT}), frozenset({"BU03630001"}))


@pytest.mark.parametrize(
    "bad",
    [
        lambda: token(private=OTHER_PRIVATE),
        lambda: token(issuer="https://evil.test"),
        lambda: token(audience="someone-else"),
        lambda: token(ttl_seconds=-(LEEWAY_SECONDS + 10)),
        lambda: token(roles=["emperor"]),
        lambda: jwt.encode(
            {"sub": "r-1", "iss": ISSUER, "aud": AUDIENCE, "exp": int(time.time()) + 60}, key=None, algorithm="none"
        ),
        lambda: jwt.encode(
            {"sub": "r-1", "iss": ISSUER, "aud": AUDIENCE, "exp": int(time.time()) + 60},
            key="shared-secret-that-is-long-enough-for-hs256",
            algorithm="HS256",
        ),
        lambda: "not-a-token",
        lambda: token(roles=5),
        lambda: token(roles="admin"),
        lambda: token(roles=[1]),
        lambda: token(areas=7),
        lambda: token(areas="GM0363"),
        lambda: token(areas=[None]),
        lambda: token(subject=""),
    ],
    ids=[
        "foreign key",
        "wrong issuer",
        "wrong audience",
        "expired",
        "unknown role",
        "alg none",
        "alg HS256",
        "garbage",
        "roles a number",
        "roles not a list",
        "roles not strings",
        "areas a number",
        "areas not a list",
        "areas not strings",
        "empty subject",
    ],
)
def test_a_bad_token_is_a_401_problem(verifier, bad):
    with pytest.raises(Problem) as refused:
        verifier.verify(bad())
    assert refused.value.status == 401


@pytest.mark.parametrize(
    "held, target, acts",
    [
        ("BU03630001", "BU03630001", True),
        ("WK036301", "BU03630101", True),
        ("GM0363", "WK036301", True),
        ("GM0363", "BU03630001", True),
        ("WK036301", "BU03630201", False),
        ("BU03630001", "WK036300", False),
        ("GM0518", "BU03630001", False),
        ("GM", "BU03630001", False),
        ("WK0363", "BU03630001", False),
        ("BU03630001", "BU0363000", False),
    ],
)
def test_areas_nest_by_cbs_code(held, target, acts):
    principal = Principal("o-1", frozenset({Role.OFFICIAL}), frozenset({held}))
    assert principal.acts_for(target) is acts


@pytest.mark.parametrize(
    "home, area, lives",
    [
        ("BU03630001", "BU03630001", True),
        ("BU03630101", "WK036301", True),
        ("BU03630101", "GM0363", True),
        ("BU03630201", "WK036301", False),
        ("BU03630001", "BU03630002", False),
    ],
)
def test_a_resident_lives_in_their_buurt_and_every_area_around_it(home, area, lives):
    assert Principal("r-1", frozenset({Role.RESIDENT}), frozenset({home})).lives_in(area) is lives


def test_the_key_is_parsed_once_when_the_verifier_is_made_not_per_token(verifier, monkeypatch):
    def no_parsing(*args: object, **kwargs: object) -> None:
        raise AssertionError("a PEM key was parsed while checking a token")

    signed = token()
    for loader in ("load_pem_public_key", "load_pem_private_key", "load_ssh_public_key"):
        monkeypatch.setattr(jwt.algorithms, loader, no_parsing)
    assert verifier.verify(signed).subject == "r-123"


@pytest.mark.parametrize("content", [PRIVATE, "not a key"], ids=["private key", "garbage"])
def test_a_key_file_without_an_rsa_public_key_stops_the_start(tmp_path, content):
    path = tmp_path / "public.pem"
    path.write_text(content)
    with pytest.raises((ValueError, jwt.PyJWTError)):
        TokenVerifier(issuer=ISSUER, audience=AUDIENCE, public_key_file=path)


async def test_a_token_is_checked_on_the_event_loop(verifier):
    loop_thread = threading.get_ident()
    checked_in: list[int] = []
    verify = verifier.verify

    def recording(raw: str) -> Principal:
        checked_in.append(threading.get_ident())
        return verify(raw)

    verifier.verify = recording
    principal = await verifier.verify_without_blocking(token())
    assert principal.subject == "r-123" and checked_in == [loop_thread]


async def test_a_jwks_key_is_fetched_off_the_event_loop_once_then_tokens_are_checked_on_it(monkeypatch):
    public_key = serialization.load_pem_public_key(PUBLIC.encode())
    jwk = json.loads(RSAAlgorithm.to_jwk(public_key)) | {"kid": "key-1", "alg": "RS256", "use": "sig"}
    fetched_in: list[int] = []

    def fetch(client: jwt.PyJWKClient) -> dict:
        fetched_in.append(threading.get_ident())
        return {"keys": [jwk]}

    monkeypatch.setattr(jwt.PyJWKClient, "fetch_data", fetch)
    verifier = TokenVerifier(issuer=ISSUER, audience=AUDIENCE, jwks_url="https://login.test/certs")
    loop_thread = threading.get_ident()
    first = await verifier.verify_without_blocking(token(key_id="key-1"))
    assert first.subject == "r-123"
    assert len(fetched_in) == 1 and fetched_in[0] != loop_thread

    checked_in: list[int] = []
    verify = verifier.verify

    def recording(raw: str) -> Principal:
        checked_in.append(threading.get_ident())
        return verify(raw)

    verifier.verify = recording
    await verifier.verify_without_blocking(token(key_id="key-1", subject="r-456"))
    assert checked_in == [loop_thread] and len(fetched_in) == 1
    with pytest.raises(Problem) as refused:  # an unknown key id is looked up off the loop, and refused
        await verifier.verify_without_blocking(token(key_id="key-2"))
    assert refused.value.status == 401 and checked_in[-1] != loop_thread


def test_clocks_may_differ_by_the_leeway_and_no_more(verifier):
    now = int(time.time())
    claims = {"sub": "r-1", "iss": ISSUER, "aud": AUDIENCE, "roles": ["resident"], "areas": ["BU03630001"]}

    def signed(**times: int) -> str:
        return jwt.encode(claims | times, PRIVATE, algorithm="RS256")

    assert verifier.verify(signed(iat=now + 5, nbf=now + 5, exp=now + 60)).subject == "r-1"  # issued "5 s ahead"
    assert verifier.verify(signed(iat=now - 60, exp=now - 10)).subject == "r-1"  # expired 10 s ago by our clock
    for late in (
        signed(iat=now - 120, exp=now - LEEWAY_SECONDS - 10),
        signed(nbf=now + LEEWAY_SECONDS + 10, exp=now + 600),
    ):
        with pytest.raises(Problem) as refused:
            verifier.verify(late)
        assert refused.value.status == 401


async def test_a_key_the_identity_provider_removed_is_refused_once_the_fetched_key_set_expires(monkeypatch):
    public_key = serialization.load_pem_public_key(PUBLIC.encode())
    jwk = json.loads(RSAAlgorithm.to_jwk(public_key)) | {"kid": "key-1", "alg": "RS256", "use": "sig"}
    published = {"keys": [jwk]}
    monkeypatch.setattr(jwt.PyJWKClient, "fetch_data", lambda client: published)
    clock = [1_000.0]
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])
    verifier = TokenVerifier(issuer=ISSUER, audience=AUDIENCE, jwks_url="https://login.test/certs")
    assert (await verifier.verify_without_blocking(token(key_id="key-1"))).subject == "r-123"

    published["keys"] = []  # rotated out at the identity provider
    clock[0] += JWKS_LIFESPAN_SECONDS / 2
    assert (await verifier.verify_without_blocking(token(key_id="key-1"))).subject == "r-123"  # still trusted
    clock[0] += JWKS_LIFESPAN_SECONDS
    with pytest.raises(Problem) as refused:
        await verifier.verify_without_blocking(token(key_id="key-1"))
    assert refused.value.status == 401
