"""Every test belongs to exactly one tier (unit, integration, e2e, fault), so `make test` runs it."""

import pytest

TIERS = {"unit", "integration", "e2e", "fault"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        tiers = {mark.name for mark in item.iter_markers()} & TIERS
        if len(tiers) != 1:
            raise pytest.UsageError(f"{item.nodeid} must have exactly one tier marker of {sorted(TIERS)}, has {tiers}")
