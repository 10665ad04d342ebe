"""Hypothesis profiles for the property tests, and the settings of their state machines.

`make test` runs the `ci` profile: derandomized (the same examples on every run and every machine) and
without an example database, so a run passes or fails by the code alone. `make test-explore` runs the
`explore` profile: random seeds, five times the examples and twice the steps of every state machine
(ten times the steps in all), for developers hunting new counterexamples. The profile is chosen by
`HYPOTHESIS_PROFILE` (default `ci`).
"""

from __future__ import annotations

import os
from collections import Counter

from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, run_state_machine_as_test

EXPLORE_EXAMPLES, EXPLORE_STEPS = 5, 2  # ten times the steps in all
steps_run: Counter[str] = Counter()  # steps each state machine ran in this test run, for the summary

settings.register_profile(
    "ci",
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
settings.register_profile("explore", parent=settings.get_profile("ci"), derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def exploring() -> bool:
    return settings.get_current_profile_name() == "explore"


def state_machine_settings(max_examples: int, steps: int) -> settings:
    """Settings for one state machine: `max_examples` runs of up to `steps` steps in `make test`, ten times
    as many steps in all (five times the runs, each twice as long) under `make test-explore`."""
    if exploring():
        return settings(max_examples=max_examples * EXPLORE_EXAMPLES, stateful_step_count=steps * EXPLORE_STEPS)
    return settings(max_examples=max_examples, stateful_step_count=steps)


def run_machine(machine: type[RuleBasedStateMachine], max_examples: int, steps: int) -> None:
    """Run `machine` as a test with `state_machine_settings`, counting the steps it runs in `steps_run`."""

    class Counted(machine):  # type: ignore[misc, valid-type]
        checked_before = False

        @invariant()
        def count_step(self) -> None:  # invariants are checked once before the first step, then after each
            if self.checked_before:
                steps_run[machine.__name__] += 1
            self.checked_before = True

    Counted.__name__ = machine.__name__
    run_state_machine_as_test(Counted, settings=state_machine_settings(max_examples, steps))
