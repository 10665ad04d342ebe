"""A short chaos run in every `make test` (`make chaos` runs the long one): pledges with Idempotency-Keys at a fixed
rate while service processes are killed, PostgreSQL and Kafka restart and the mail server and the webhook endpoint
go down; afterwards nothing answered is lost, nothing is doubled, nothing is dead-lettered and the ledger balances.
The seed is fixed, so the same faults come in the same order on every run."""

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
    problems = findings.lost + findings.doubled + findings.ledger + findings.dead_letters
    assert findings.clean, "\n".join(problems[:40])
    assert figures["faults"] >= 3 and figures["requests_requests"] > 300, figures
