"""Schema migrations with yoyo: plain SQL files, the kit's own first, then the service's.

Each service database holds the kit's tables (outbox, inbox) and the service's own. Applying is
idempotent and safe with several replicas starting at once (yoyo takes a lock in the database).
"""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path
from urllib.parse import unquote, urlencode

import psycopg
from yoyo import get_backend, read_migrations

logger = logging.getLogger(__name__)

KIT_MIGRATIONS = Path(__file__).parent / "migrations"


def _yoyo_url(database_url: str) -> str:
    """The URL for yoyo (with psycopg 3). yoyo reads one host and one port from a URL, so a URL naming several
    (`postgresql://u:p@h1:5432,h2:5432/db?target_session_attrs=read-write`, to reach whichever is primary) reaches
    it with them as its `host` and `port` parameters instead, which yoyo hands to libpq as they are."""
    scheme, rest = database_url.split("://", 1)
    if scheme not in {"postgres", "postgresql"}:
        return database_url
    authority, _, path = rest.partition("/")
    user, at, hosts = authority.rpartition("@")
    if "," not in hosts:
        return f"postgresql+psycopg://{rest}"
    database, _, query = path.partition("?")
    parameters = "&".join(filter(None, [urlencode(_hosts_and_ports(hosts)), query]))
    return f"postgresql+psycopg://{user}{at}/{database}?{parameters}"


_ADDRESS = re.compile(r"(?P<host>\[[^\]]*\]|[^:\[\]]*)(?::(?P<port>\d*))?")


def _hosts_and_ports(hosts: str) -> dict[str, str]:
    """`h1:5432,[::1]:5433,h3` as libpq's `host` and `port` lists (an empty port: the default)."""
    names, ports = [], []
    for address in hosts.split(","):
        if (match := _ADDRESS.fullmatch(address)) is None:
            raise ValueError(f"not a host[:port] in the database URL: {address!r}")
        names.append(unquote(match["host"].strip("[]")))
        ports.append(match["port"] or "")
    return {"host": ",".join(names), "port": ",".join(ports)}


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


def apply_when_reachable(database_url: str, *service_migrations: Path, wait_seconds: float = 60.0) -> list[str]:
    """`apply`, tried again while the database does not accept connections (restarting, failing over, recovering)
    for up to `wait_seconds`: a process started meanwhile waits for it instead of exiting into a crash loop. Each
    migration runs in a transaction of its own, so one cut off halfway is applied again whole."""
    deadline = time.monotonic() + wait_seconds
    delay = 0.5
    while True:
        try:
            return apply(database_url, *service_migrations)
        except psycopg.OperationalError as error:
            if time.monotonic() + delay > deadline:
                raise
            logger.warning("the database does not answer (%s); migrating again in %.1f s", str(error).strip(), delay)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
