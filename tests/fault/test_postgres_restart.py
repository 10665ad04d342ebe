"""PostgreSQL restarted under the services' feet, cleanly (fast shutdown) or as in a crash (immediate
shutdown, then crash recovery from the WAL): every committed row is still there, and a transaction that
had not committed when the server went down left nothing behind.

The server is the local stack's PostgreSQL, started by this module on a free port in a directory of its
own, restarted with `deploy/local/stack.sh pg-restart`, and stopped however the test ends.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import asyncpg
import pytest

from ..system import free_port

pytestmark = pytest.mark.fault

ROOT = Path(__file__).parents[2]
POSTGRES_SH = ROOT / "deploy/local/postgres.sh"
STACK_SH = ROOT / "deploy/local/stack.sh"
PASSWORD = "restart-test"
ROWS = 5_000


@pytest.fixture(scope="module")
def server():
    """(admin URL, environment for the stack scripts) of a PostgreSQL of its own."""
    port = free_port()
    local_dir = tempfile.mkdtemp(prefix="bk-postgres-restart-")
    # the settings reach the scripts through the environment; a make command line of the caller
    # (in MAKEFLAGS) must not override them when the scripts ask make for the others
    env = {name: value for name, value in os.environ.items() if name not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    env |= {"LOCAL_DIR": local_dir, "PG_PORT": str(port), "PG_SUPERUSER_PASSWORD": PASSWORD}
    try:
        started = time.monotonic()
        result = subprocess.run(
            [str(POSTGRES_SH), "up"], env=env, capture_output=True, text=True, timeout=180, check=False
        )
        if result.returncode != 0:
            pytest.fail(f"postgres.sh up failed:\n{result.stdout}{result.stderr}")
        print(f"postgres up in {time.monotonic() - started:.1f}s on port {port}")
        yield f"postgresql://postgres:{PASSWORD}@127.0.0.1:{port}/postgres", env
    finally:
        subprocess.run([str(POSTGRES_SH), "down"], env=env, capture_output=True, timeout=120, check=False)
        shutil.rmtree(local_dir, ignore_errors=True)


@pytest.mark.parametrize("mode", ["fast", "immediate"])
async def test_a_restart_keeps_every_committed_row_and_nothing_of_an_open_transaction(server, mode):
    url, env = server
    table = f"ledger_{mode}"
    connection = await asyncpg.connect(url)
    open_transaction = await asyncpg.connect(url)
    try:
        await connection.execute(f"CREATE TABLE {table} (id bigint PRIMARY KEY, cents bigint NOT NULL)")
        async with connection.transaction():
            await connection.executemany(
                f"INSERT INTO {table} VALUES ($1, $2)", [(number, number * 100) for number in range(ROWS)]
            )
        await connection.execute(f"UPDATE {table} SET cents = cents + 1 WHERE id % 2 = 0")  # committed on its own
        transaction = open_transaction.transaction()
        await transaction.start()
        await open_transaction.execute(f"INSERT INTO {table} VALUES ({ROWS}, 1)")
        await open_transaction.execute(f"UPDATE {table} SET cents = 0")

        process = await asyncio.create_subprocess_exec(
            str(STACK_SH), "pg-restart", mode, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        output, _ = await asyncio.wait_for(process.communicate(), timeout=150)
        line = output.decode().strip()
        print(line)
        assert process.returncode == 0, line
        assert ("crash recovery" in line) == (mode == "immediate"), line
    finally:
        for client in (connection, open_transaction):
            client.terminate()  # the server closed these connections

    after = await asyncpg.connect(url)
    try:
        rows = await after.fetch(f"SELECT id, cents FROM {table} ORDER BY id")
    finally:
        await after.close()
    assert [(row["id"], row["cents"]) for row in rows] == [
        (number, number * 100 + (number % 2 == 0)) for number in range(ROWS)
    ]
