"""Bearer tokens: only RS256 tokens signed by the configured key, for our issuer and audience, are accepted."""

import time

import jwt
import pytest

from buurtkracht_kit.auth import Principal, Role, TokenVerifier, mint
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
        lambda: token(ttl_seconds=-10),
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
