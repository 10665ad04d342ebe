"""What the notifications tests that run the whole service share: the service started as in production (its
lifespan) but serving in-process, once its consumer holds its partitions, and HTTP to it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from asgi_lifespan import LifespanManager
from notifications.app import create
from notifications.settings import NotificationsSettings

from buurtkracht_kit.runtime import Service


@pytest.fixture(scope="session")
def consuming_service() -> Callable[[NotificationsSettings], contextlib.AbstractAsyncContextManager[Service]]:
    """`async with consuming_service(settings) as service:`."""
    return _consuming_service


@contextlib.asynccontextmanager
async def _consuming_service(settings: NotificationsSettings) -> AsyncIterator[Service]:
    service = create(settings)
    async with LifespanManager(service.app):
        for _ in range(300):
            if await service.consuming():
                break
            await asyncio.sleep(0.1)
        assert await service.consuming()
        yield service


@pytest.fixture(scope="module")
async def api(service):
    """HTTP to the module's `service`, in-process."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=service.app), base_url="http://test") as client:
        yield client
