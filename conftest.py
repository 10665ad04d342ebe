"""Every test belongs to exactly one tier, and a run takes the tiers in order: unit, integration, e2e, fault."""

import pytest

import tests.properties  # noqa: F401  (registers and loads the Hypothesis profile before any test module)

pytest_plugins = ["tests.stack"]  # fixtures for the tiers that use the local stack

TIERS = ("unit", "integration", "e2e", "fault")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def tier(item: pytest.Item) -> int:
        tiers = {mark.name for mark in item.iter_markers()} & set(TIERS)
        if len(tiers) != 1:
            raise pytest.UsageError(f"{item.nodeid} needs exactly one tier marker of {TIERS}, has {sorted(tiers)}")
        return TIERS.index(tiers.pop())

    items.sort(key=tier)
