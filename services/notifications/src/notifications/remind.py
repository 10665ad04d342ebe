"""`python -m notifications.remind [--at TIME]`: one reminder pass now, or as if it were TIME (an ISO 8601 time with
its offset), on the database the settings name; prints how many residents were reminded, by kind.

The service runs the pass itself every `reminder_check_seconds`; this is for seeing reminders on a local stack without
waiting for their day. A pass at a later time records the reminders it sends as sent: on a real municipality's
database it would send them early.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from datetime import UTC, datetime

from buurtkracht_kit.db import create_pool

from .app import create
from .service.reminders import remind
from .settings import NotificationsSettings


async def remind_at(at: datetime) -> dict[str, int]:
    settings = NotificationsSettings()
    service = create(settings)
    service.pool = await create_pool(settings.database_url, 1, 2, wait_seconds=settings.database_wait_seconds)
    try:
        return await remind(service, at)
    finally:
        await service.pool.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m notifications.remind", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--at", type=datetime.fromisoformat, default=None, help="the moment of the pass, e.g. 2027-01-10T09:00:00+01:00"
    )
    at = parser.parse_args().at or datetime.now(UTC)
    if at.tzinfo is None:
        parser.error("--at needs a time with its offset (Z or +01:00)")
    print(json.dumps(asyncio.run(remind_at(at)), sort_keys=True))


if __name__ == "__main__":
    main()
