"""CBS area codes: one format, one way they nest."""

import pytest

from buurtkracht_contracts.areas import enclosing, inside_prefixes, is_area_code, within

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("code", ["GM0363", "WK036301", "BU03630101"])
def test_well_formed_codes_are_area_codes_and_lie_in_themselves(code):
    assert is_area_code(code) and within(code, code)


@pytest.mark.parametrize("code", ["", "GM363", "WK0363011", "BU0363010", "XX036301", "bu03630101", "GM0363\n"])
def test_malformed_codes_contain_nothing_and_lie_in_nothing(code):
    assert not is_area_code(code)
    assert not within(code, "GM0363") and not within("BU03630101", code)
    assert enclosing(code) == [] and inside_prefixes(code) == []


def test_a_buurt_lies_in_its_wijk_and_municipality_and_not_in_a_neighbouring_wijk():
    assert within("BU03630101", "WK036301") and within("BU03630101", "GM0363")
    assert not within("BU03630101", "WK036302") and not within("BU03630101", "GM0364")
    assert not within("WK036301", "BU03630101"), "an outer area never lies in an inner one"


def test_enclosing_and_inside_agree_with_within():
    codes = ["GM0363", "GM0364", "WK036301", "WK036302", "WK036401", "BU03630101", "BU03630102", "BU03630201"]
    for code in codes:
        assert enclosing(code) == [outer for outer in sorted(codes, key=len, reverse=True) if within(code, outer)]
        inside = [c for c in codes if c != code and any(c.startswith(p) for p in inside_prefixes(code))]
        assert inside == [c for c in codes if c != code and within(c, code)]
