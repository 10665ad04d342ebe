"""A service built only from the kit and the counters domain, run as its own process by the tests.

BK_SERVICE_NAME=... BK_DATABASE_URL=... python -m tests.integration.kit_service
"""

from fastapi import APIRouter, Request

from buurtkracht_kit.runtime import Service, ServiceSpec, serve
from buurtkracht_kit.settings import KitSettings

from .kit_domain import MIGRATIONS, TEST_TOPIC, CounterIncremented, apply_increment, increment

router = APIRouter()


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
        subscribed_topics=[TEST_TOPIC],
        handlers={CounterIncremented: apply_increment},
    )
    return Service(spec, settings)


if __name__ == "__main__":
    serve(build(KitSettings()))
