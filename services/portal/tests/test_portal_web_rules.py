"""The pages' rules that need no I/O: where a sign-in may send a person afterwards, euros as typed, the session
cookie's signature, and the two message catalogues holding the same keys."""

from __future__ import annotations

import pytest
from portal.domain.web import cents_from_euros, euros, local_path, signed, unsigned
from portal.entrypoints.web import catalogue

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "candidate",
    [
        "https://evil.example/",
        "//evil.example/x",
        "/\\evil.example",
        "\\\\evil.example",
        "evil.example",
        "javascript:alert(1)",
        "/ spaces",
        "",
        None,
        "http:/evil.example",
        "/x:y",
    ],
)
def test_a_next_that_is_not_a_path_here_goes_to_the_front_page(candidate):
    assert local_path(candidate) == "/"


@pytest.mark.parametrize("candidate", ["/", "/rondes/1a2b", "/buurten/BU03630001?melding=saved", "/initiatieven/nieuw"])
def test_a_path_here_is_kept(candidate):
    assert local_path(candidate) == candidate


@pytest.mark.parametrize(
    ("typed", "cents"),
    [("12", 1200), ("12,5", 1250), ("12,50", 1250), ("12.50", 1250), ("1.234,56", 123456), ("€ 7", 700)],
)
def test_euros_as_people_type_them_become_exact_cents(typed, cents):
    assert cents_from_euros(typed) == cents


@pytest.mark.parametrize("typed", ["", "abc", "1,234", "12,345", "-5", "1e3", "12,5,0"])
def test_anything_else_is_refused_not_rounded(typed):
    with pytest.raises(ValueError):
        cents_from_euros(typed)


def test_cents_are_shown_as_dutch_euros():
    assert euros(123456) == "€ 1.234,56"
    assert euros(5) == "€ 0,05"
    assert euros(None) == "–"


def test_a_session_cookie_with_a_wrong_signature_names_no_session():
    value = signed("token", "secret")
    assert unsigned(value, "secret") == "token"
    assert unsigned(value, "other secret") is None
    assert unsigned("token.0000", "secret") is None
    assert unsigned("token", "") == "token"


def test_both_languages_have_every_message():
    assert set(catalogue("nl")) == set(catalogue("en"))
