"""Work a service does again and again in the background (closing due rounds, sending due email, sweeping old
rows): one loop for all of it. A round that fails is logged with its traceback and the next round tries again,
so a passing database outage never ends the task; cancelling the task (at shutdown) ends it.
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
        await asyncio.sleep(seconds)
