"""What the vouchers tests that run commands on a scratch PostgreSQL share: running one command through the service
layer in a unit of work of its own, opening a round the way an official of its area does, and the whole service
running on a scratch database (`service`, with `api` to it over HTTP; a module may start its own `service`). Each
module brings its own `pool` on the migrated scratch database (pool sizes differ: the concurrency tests need many
connections).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from vouchers.adapters.unit_of_work import VouchersUnitOfWork
from vouchers.app import create
from vouchers.domain.rounds import Mechanism, Round
from vouchers.service import rounds
from vouchers.settings import VouchersSettings

from buurtkracht_contracts.event import source_urn
from buurtkracht_contracts.topics import all_topics
from buurtkracht_kit import topics
from buurtkracht_kit.auth import Principal, Role
from buurtkracht_kit.runtime import Service
from tests.keys import PUBLIC

SOURCE = source_urn("00000000000000000000", "buurtkracht-vouchers")

Once = Callable[[Callable[[VouchersUnitOfWork], Awaitable[Any]]], Awaitable[Any]]
OpenRound = Callable[..., Awaitable[Round]]


@pytest.fixture
def once(pool) -> Once:
    """`await once(command)`: `command(uow)` in a unit of work of its own on the module's `pool`, committed; its
    result."""

    async def run(command):
        async with VouchersUnitOfWork(pool, SOURCE) as uow:
            result = await command(uow)
            await uow.commit()
            return result

    return run


@pytest.fixture
def open_round(once: Once) -> OpenRound:
    """`await open_round(mechanism, area)`: the round an official of `area` opens, open since a minute ago for thirty
    days, with `total` cents; a pledge round gives each wallet `voucher` cents, a committee round awards on `quorum`
    votes."""

    async def run(
        mechanism: Mechanism,
        area: str,
        *,
        total: int = 100_000,
        voucher: int = 2_000,
        quorum: int = 1,
        name: str = "Buurtbudget",
    ) -> Round:
        official = Principal("o-1", frozenset({Role.OFFICIAL}), frozenset({area}))
        now = datetime.now(UTC)
        return await once(
            lambda uow: rounds.open_round(
                uow,
                official,
                area_code=area,
                name=name,
                mechanism=mechanism,
                total_budget_cents=total,
                opens_at=now - timedelta(minutes=1),
                closes_at=now + timedelta(days=30),
                voucher_amount_cents=voucher if mechanism is Mechanism.PLEDGE else None,
                allow_wallet_claims=False,
                committee_quorum=quorum if mechanism is Mechanism.COMMITTEE else None,
            )
        )

    return run


@pytest.fixture(scope="module")
async def service(scratch_database, kafka_bootstrap, tmp_path_factory, running_service):
    """The whole service of a test module, on its scratch database, once its consumer holds its partitions."""
    await topics.ensure({"bootstrap_servers": kafka_bootstrap}, all_topics())
    async with running_service(
        scratch_database, kafka_bootstrap, tmp_path_factory.mktemp("keys"), relay_poll_interval_seconds=0.1
    ) as service:
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


@pytest.fixture(scope="session")
def running_service() -> Callable[..., contextlib.AbstractAsyncContextManager[Service]]:
    """`async with running_service(database_url, kafka_bootstrap, key_dir, **settings) as service:`."""
    return _running_service


@contextlib.asynccontextmanager
async def _running_service(
    database_url: str, kafka_bootstrap: str, key_dir: Path, **settings: Any
) -> AsyncIterator[Service]:
    """The vouchers service on `database_url`, started as in production (its lifespan) but serving in-process: a
    consumer group of its own that starts at the end of the topics, tokens checked with the tests' key."""
    public_key = key_dir / "public.pem"
    await asyncio.to_thread(public_key.write_text, PUBLIC)
    service = create(
        VouchersSettings(
            service_name=f"vouchers-test-{uuid.uuid4().hex[:6]}",
            database_url=database_url,
            kafka_bootstrap_servers=kafka_bootstrap,
            jwt_public_key_file=public_key,
            consumer_start="latest",
            ledger_check_seconds=3600,
            **settings,
        )
    )
    async with LifespanManager(service.app):
        yield service
