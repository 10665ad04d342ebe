"""Work a service does again and again in the background (closing due rounds, sending due email, sweeping old
rows): one loop for all of it. A round that fails is logged with its traceback and the next round tries again,
so a passing database outage never ends the task; cancelling the task (at shutdown) ends it, also when the work
swallowed the cancellation (Python 3.11's `asyncio.wait_for` does when the awaited call completes at the moment
it is cancelled; asyncpg uses it): `stop_if_cancelled` after each round.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

logger = logging.getLogger(__name__)


async def every(seconds: float, work: Callable[[], Awaitable[object]], what: str) -> None:
    """Run `work` now and then every `seconds` after the previous round ended, until cancelled. `what` names the
    work in the log ("closing due rounds")."""
    while True:
        try:
            await work()
        except Exception:  # the next round tries again
            logger.exception("%s failed; trying again in %s s", what, seconds)
        stop_if_cancelled()
        await asyncio.sleep(seconds)


def stop_if_cancelled() -> None:
    """Raise `CancelledError` when the running task was asked to stop but the request was swallowed on the way
    (the task still counts it: `Task.cancelling()`), so a loop ends instead of going round forever."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
