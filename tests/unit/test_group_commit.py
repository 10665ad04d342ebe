"""Group commit: a lone request is not held back, requests that arrive during a batch form the next one (at most
`max_batch`), each caller gets its own outcome, and a batch that fails tells every caller in it."""

from __future__ import annotations

import asyncio

import pytest

from buurtkracht_kit.group_commit import GroupCommit

pytestmark = pytest.mark.unit


class Desk:
    """A `process` that records its batches and holds each until the test lets it go."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.release = asyncio.Event()
        self.started = asyncio.Event()

    async def process(self, items):
        self.batches.append(list(items))
        self.started.set()
        await self.release.wait()
        return [ValueError(f"odd {i}") if i % 2 else i * 10 for i in items]


async def test_a_lone_request_starts_a_batch_at_once():
    desk = Desk()
    desk.release.set()
    group = GroupCommit(desk.process)
    assert await asyncio.wait_for(group.submit(4), timeout=1) == 40
    assert desk.batches == [[4]]


async def test_requests_arriving_during_a_batch_form_the_next_batches_in_order_each_with_its_own_outcome():
    desk, sizes = Desk(), []
    group = GroupCommit(desk.process, max_batch=3, observe=sizes.append)
    first = asyncio.ensure_future(group.submit(0))
    await desk.started.wait()
    rest = [asyncio.ensure_future(group.submit(i)) for i in range(1, 8)]
    await asyncio.sleep(0)
    desk.release.set()
    outcomes = await asyncio.gather(first, *rest, return_exceptions=True)
    assert desk.batches == [[0], [1, 2, 3], [4, 5, 6], [7]] and sizes == [1, 3, 3, 1]
    assert [o if isinstance(o, int) else str(o) for o in outcomes] == [
        0,
        "odd 1",
        20,
        "odd 3",
        40,
        "odd 5",
        60,
        "odd 7",
    ]
    assert (group.batches, group.items) == (4, 8)


async def test_a_batch_that_fails_tells_each_of_its_callers_and_the_next_batch_runs():
    calls = []

    async def process(items):
        calls.append(list(items))
        if len(calls) == 1:
            raise ConnectionResetError("gone")
        return [i for i in items]

    group = GroupCommit(process)
    first = await asyncio.gather(group.submit(1), group.submit(2), return_exceptions=True)
    assert [type(o) for o in first] == [ConnectionResetError, ConnectionResetError]
    assert await group.submit(3) == 3


async def test_a_caller_that_stops_waiting_leaves_the_others_their_outcomes():
    desk = Desk()
    group = GroupCommit(desk.process)
    first = asyncio.ensure_future(group.submit(2))
    await desk.started.wait()
    gone, stays = asyncio.ensure_future(group.submit(4)), asyncio.ensure_future(group.submit(6))
    await asyncio.sleep(0)
    gone.cancel()
    desk.release.set()
    assert await first == 20 and await stays == 60
    assert desk.batches == [[2], [4, 6]]  # the item of the caller that left was processed all the same
