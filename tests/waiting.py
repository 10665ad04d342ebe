"""Waiting for what happens elsewhere (a consumer, a relay, a read model) without sleeping a fixed time."""

from __future__ import annotations

import asyncio


async def eventually(check, timeout: float = 30.0):
    """The first truthy answer of `check()`, asked every 0.2 s for up to `timeout` seconds; its last answer after."""
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if result := await check():
            return result
        await asyncio.sleep(0.2)
    return await check()
