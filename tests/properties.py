"""Hypothesis profiles for the property tests, and the settings of their state machines.

`make test` runs the `ci` profile: derandomized (the same examples on every run and every machine) and
without an example database, so a run passes or fails by the code alone. `make test-explore` runs the
`explore` profile: random seeds, five times the examples and twice the steps of every state machine
(ten times the steps in all), for developers hunting new counterexamples. The profile is chosen by
`HYPOTHESIS_PROFILE` (default `ci`).
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

EXPLORE_EXAMPLES, EXPLORE_STEPS = 5, 2  # ten times the steps in all

settings.register_profile(
    "ci",
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
settings.register_profile(
    "explore",
    derandomize=False,
    database=None,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def exploring() -> bool:
    return settings.get_current_profile_name() == "explore"


def state_machine_settings(max_examples: int, steps: int) -> settings:
    """Settings for one state machine: `max_examples` runs of up to `steps` steps in `make test`, ten times
    as many steps in all (five times the runs, each twice as long) under `make test-explore`."""
    if exploring():
        return settings(max_examples=max_examples * EXPLORE_EXAMPLES, stateful_step_count=steps * EXPLORE_STEPS)
    return settings(max_examples=max_examples, stateful_step_count=steps)
