"""The restore drill of `make restore-drill`, shorter, in every `make test`: the ledger's PostgreSQL archives WAL
to the local object store, is lost in the middle of a voucher day and is restored to a point in time with Barman
Cloud; afterwards every pledge answered before the point is back and none after it, no event is on Kafka twice,
no sequence is given twice, every consumer applied every event once, and the ledger balances (tests/drill)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ..drill.restore import drill
from ..system import ROOT, free_port

pytestmark = pytest.mark.fault

LOCAL_DIR = Path(os.environ.get("LOCAL_DIR", ROOT / ".local")).resolve()  # the stack's: its Kafka, the store


async def test_the_ledger_restored_to_a_point_in_time_has_what_was_answered_before_it(
    kafka_bootstrap, tmp_path_factory
):
    lines: list[str] = []
    figures = await drill(
        kafka_bootstrap, LOCAL_DIR, free_port(), rate=10.0, phase=4.0, say=lines.append, folders=tmp_path_factory
    )
    print("\n".join(lines), json.dumps(figures), sep="\n")
    assert figures["problems"] == [], "\n".join(figures["problems"][:40])
    for phase in ("before", "after", "restored"):
        assert figures[f"pledges_{phase}"]["answered_201"] > 0, figures
    assert figures["pledges_before"]["in_restored_ledger"] == figures["pledges_before"]["answered_201"]
    assert figures["pledges_after"]["in_restored_ledger"] == 0
    assert figures["after_restore"]["outbox_rows_already_on_kafka"] > 0, "the stall left nothing in the outbox"
    assert figures["initiative_after_restore_point_known_again"]
