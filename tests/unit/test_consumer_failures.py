"""What a consumer retries as an outage (without counting attempts) and what it counts against the message."""

from __future__ import annotations

import asyncpg
import asyncpg.exceptions._base as asyncpg_base
import pytest

from buurtkracht_kit.consumer import _is_infrastructure

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "error, outage",
    [
        (ConnectionResetError("reset"), True),
        (asyncpg.InterfaceError("the connection is closed"), True),
        (asyncpg.CannotConnectNowError("starting up"), True),
        (asyncpg.DeadlockDetectedError("deadlock"), True),
        (asyncpg.SerializationError("could not serialize"), True),
        (asyncpg_base.DataError("invalid input for query argument $1"), False),  # the driver's, an InterfaceError
        (asyncpg_base.ClientConfigurationError("bad setting"), False),
        (asyncpg.DataError("value out of int64 range"), False),
        (asyncpg.CharacterNotInRepertoireError("invalid byte sequence: 0x00"), False),
        (TimeoutError(), False),
        (ValueError("bad event"), False),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, BaseException) else str(value),
)
def test_only_the_infrastructure_failing_is_an_outage(error, outage):
    assert _is_infrastructure(error) is outage
