"""Every test belongs to exactly one tier, and a run takes the tiers in order: unit, integration, e2e, browser, fuzz,
fault."""

import pytest

from tests import properties  # registers and loads the Hypothesis profile before any test module
from tests.fuzz import figures as fuzz_figures

pytest_plugins = ["tests.stack"]  # fixtures for the tiers that use the local stack

TIERS = ("unit", "integration", "e2e", "browser", "fuzz", "fault")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def tier(item: pytest.Item) -> int:
        tiers = {mark.name for mark in item.iter_markers()} & set(TIERS)
        if len(tiers) != 1:
            raise pytest.UsageError(f"{item.nodeid} needs exactly one tier marker of {TIERS}, has {sorted(tiers)}")
        return TIERS.index(tiers.pop())

    items.sort(key=tier)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if properties.steps_run:
        ran = ", ".join(f"{name} {steps:,}" for name, steps in sorted(properties.steps_run.items()))
        terminalreporter.write_line(f"state-machine steps ({properties.settings.get_current_profile_name()}): {ran}")
    if fuzz_figures:
        requests = sum(f["requests"] for f in fuzz_figures.values())
        terminalreporter.write_line(f"fuzz: {requests:,} generated requests sent")
        for (service, role), figure in sorted(fuzz_figures.items()):
            terminalreporter.write_line(
                f"  {service} as {role}: {figure['requests']:,} sent, {figure['answered_by_app']:,} reached the app"
            )
