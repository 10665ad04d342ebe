"""A short chaos run in every `make test` (`make chaos` runs the long one): pledges with Idempotency-Keys at a fixed
rate, claims and payouts, new initiatives, while service processes are killed, stalled and joined by a second
replica, PostgreSQL restarts and stalls, Kafka restarts and the mail server and the webhook endpoint go down, in
lanes at once; afterwards nothing answered is lost, nothing is doubled, every aggregate's events are in order,
nothing is dead-lettered and the ledger balances. The seed is fixed, so each lane injects the same faults in the
same order on every run."""

from __future__ import annotations

import json

import pytest

from ..chaos import faults
from ..chaos.run import chaos

pytestmark = pytest.mark.fault

SEED = 20261130


async def test_a_short_chaos_run_loses_and_doubles_nothing(kafka_bootstrap, tmp_path_factory):
    lines: list[str] = []
    findings, figures = await chaos(
        kafka_bootstrap,
        tmp_path_factory,
        seconds=75,
        seed=SEED,
        rate=6.0,
        residents=20,
        initiatives=4,
        kinds=faults.KINDS,
        say=lines.append,
        pause=(0.5, 2.0),
    )
    print("\n".join(lines), json.dumps(figures), sep="\n")
    assert findings.clean, "\n".join(findings.problems[:40])
    assert figures["faults"] >= 10 and figures["requests_requests"] > 300, figures
    lanes_hit = {lane for lane, kinds in faults.LANES.items() if any(figures.get(f"faults_{k}") for k in kinds)}
    assert lanes_hit == set(faults.LANES), figures
