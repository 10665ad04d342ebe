"""Fixtures for the tiers that need the local stack (`make stack-up`): real Kafka and PostgreSQL.

Each test module gets a database of its own, made from the stack's superuser connection and
dropped afterwards, so tests never touch a service's data.
"""

from __future__ import annotations

import os
import uuid

import asyncpg
import pytest

KAFKA = os.environ.get("BK_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:19092")
PG_ADMIN_URL = os.environ.get("BK_PG_ADMIN_URL", "postgresql://postgres:postgres@127.0.0.1:15432/postgres")


def database_url(name: str) -> str:
    base, _, _ = PG_ADMIN_URL.rpartition("/")
    return f"{base}/{name}"


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    return KAFKA


@pytest.fixture(scope="module")
async def scratch_database():
    """A fresh, empty database for one test module; its URL."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    try:
        admin = await asyncpg.connect(PG_ADMIN_URL)
    except (OSError, asyncpg.PostgresError) as error:
        pytest.fail(f"PostgreSQL of the local stack is not reachable at {PG_ADMIN_URL} ({error}); run `make stack-up`")
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield database_url(name)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
