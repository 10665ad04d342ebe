"""Background loops end when cancelled, also when the work swallowed the cancellation."""

from __future__ import annotations

import asyncio

import pytest

from buurtkracht_kit import periodic

pytestmark = pytest.mark.unit


async def test_a_loop_whose_work_swallowed_the_cancellation_still_ends():
    rounds = 0
    started = asyncio.Event()
    swallow = True

    async def work() -> None:
        nonlocal rounds
        rounds += 1
        started.set()
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            if not swallow:
                raise
            # returns as asyncio.wait_for of Python 3.11 may, when the call completes as it is cancelled

    loop = asyncio.create_task(periodic.every(0.01, work, "swallowing"))
    await started.wait()
    loop.cancel()
    done, _ = await asyncio.wait({loop}, timeout=1.0)
    swallow = False
    if not done:
        loop.cancel()  # so the test ends either way
        await asyncio.wait({loop}, timeout=1.0)
    assert done, "the loop went on after it was cancelled"
    assert loop.cancelled() and rounds == 1


async def test_a_failing_round_is_followed_by_the_next():
    rounds = 0
    third = asyncio.Event()

    async def work() -> None:
        nonlocal rounds
        rounds += 1
        if rounds == 3:
            third.set()
        if rounds == 1:
            raise RuntimeError("the database is away")

    loop = asyncio.create_task(periodic.every(0.01, work, "failing once"))
    await asyncio.wait_for(third.wait(), 5.0)
    loop.cancel()
    with pytest.raises(asyncio.CancelledError):
        await loop
