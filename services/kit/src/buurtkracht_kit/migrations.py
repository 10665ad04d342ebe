"""Schema migrations with yoyo: plain SQL files, the kit's own first, then the service's.

Each service database holds the kit's tables (outbox, inbox) and the service's own. Applying is
idempotent and safe with several replicas starting at once (yoyo takes a lock in the database).
"""

from __future__ import annotations

import logging
from pathlib import Path

from yoyo import get_backend, read_migrations

logger = logging.getLogger(__name__)

KIT_MIGRATIONS = Path(__file__).parent / "migrations"


def _yoyo_url(database_url: str) -> str:
    scheme, rest = database_url.split("://", 1)
    return f"postgresql+psycopg://{rest}" if scheme in {"postgres", "postgresql"} else database_url


def apply(database_url: str, *service_migrations: Path) -> list[str]:
    """Apply every pending migration; returns the ids applied."""
    backend = get_backend(_yoyo_url(database_url))
    migrations = read_migrations(str(KIT_MIGRATIONS), *(str(path) for path in service_migrations))
    with backend.lock():
        pending = backend.to_apply(migrations)
        backend.apply_migrations(pending)
    applied = [migration.id for migration in pending]
    if applied:
        logger.info("migrations applied", extra={"migrations": applied})
    return applied
