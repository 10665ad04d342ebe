"""A service built only from the kit and the counters domain, run as its own process by the tests.

BK_SERVICE_NAME=... BK_DATABASE_URL=... [KIT_TEST_TOPIC=...] python -m tests.integration.kit_service

It consumes KIT_TEST_TOPIC (the run's test topic by default); an increment by `KILLING_AMOUNT` ends the
process at once, as a crash in native code or the kernel's out-of-memory killer would.
"""

import os

from fastapi import APIRouter, Request

from buurtkracht_contracts import Envelope
from buurtkracht_kit.db import UnitOfWork
from buurtkracht_kit.runtime import Service, ServiceSpec, serve
from buurtkracht_kit.settings import KitSettings

from .kit_domain import MIGRATIONS, TEST_TOPIC, CounterIncremented, apply_increment, increment

KILLING_AMOUNT = -99
KILLED_EXIT_CODE = 70

router = APIRouter()


async def apply_or_die(uow: UnitOfWork, event: CounterIncremented, envelope: Envelope) -> None:
    if event.amount == KILLING_AMOUNT:
        os._exit(KILLED_EXIT_CODE)
    await apply_increment(uow, event, envelope)


@router.post("/api/v1/counters/{counter_id}/increments", status_code=201)
async def post_increment(counter_id: str, request: Request) -> dict[str, str]:
    envelope = await increment(request.app.state.pool, counter_id)
    return {"event_id": str(envelope.id)}


def build(settings: KitSettings) -> Service:
    spec = ServiceSpec(
        name=settings.service_name,
        title="kit test service",
        version="0",
        migrations=MIGRATIONS,
        routers=[router],
        subscribed_topics=[os.environ.get("KIT_TEST_TOPIC", TEST_TOPIC)],
        handlers={CounterIncremented: apply_or_die},
    )
    return Service(spec, settings)


if __name__ == "__main__":
    serve(build(KitSettings()))
