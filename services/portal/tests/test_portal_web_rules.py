"""The pages' rules that need no I/O: where a sign-in may send a person afterwards, euros as typed, the session
cookie's signature, and the two message catalogues holding the same keys."""

from __future__ import annotations

import pytest
from portal.domain.areas import drawing
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


def test_every_kind_of_notification_has_a_label_in_the_inbox():
    from notifications.domain.recipients import KINDS

    for language in ("nl", "en"):
        assert {kind for kind in KINDS if f"kind.{kind}" not in catalogue(language)} == set(), language


SQUARE_RD = {  # 400 by 300 metres in RD New coordinates
    "type": "Polygon",
    "coordinates": [[[120000, 487000], [120400, 487000], [120400, 487300], [120000, 487300], [120000, 487000]]],
}


def test_an_outline_in_metres_is_drawn_north_up_with_its_shape_kept():
    drawn = drawing(SQUARE_RD)
    assert (drawn.width, drawn.height) == (320.0, 240.0)
    assert drawn.path == "M 0.0 240.0 L 320.0 240.0 L 320.0 0.0 L 0.0 0.0 L 0.0 240.0 Z"


def test_an_outline_in_degrees_narrows_east_west_by_the_latitude():
    at_60_north = {
        "type": "Polygon",
        "coordinates": [[[4.0, 59.9], [4.2, 59.9], [4.2, 60.1], [4.0, 60.1], [4.0, 59.9]]],
    }
    drawn = drawing(at_60_north)
    assert drawn.width == 320.0 and drawn.height == pytest.approx(640.0, abs=0.2)  # cos 60° = 0.5: twice as tall


def test_every_ring_of_a_multipolygon_is_drawn_holes_included():
    outer = [[0, 0], [10, 0], [10, 10], [0, 10], [0, 0]]
    hole = [[4, 4], [6, 4], [6, 6], [4, 6], [4, 4]]
    island = [[20, 0], [22, 0], [22, 2], [20, 0]]
    drawn = drawing({"type": "MultiPolygon", "coordinates": [[outer, hole], [island]]})
    assert drawn.path.count("M ") == 3 and drawn.path.count(" Z") == 3


@pytest.mark.parametrize(
    "outline",
    [None, {}, {"type": "Point", "coordinates": [4.9, 52.37]}, {"type": "Polygon", "coordinates": [[[1, 1], [1, 1]]]}],
)
def test_no_outline_or_one_without_extent_draws_nothing(outline):
    assert drawing(outline) is None
