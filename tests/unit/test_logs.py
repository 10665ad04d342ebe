"""Log lines are JSON, name the service, and carry the id of the event being handled."""

import json
import logging

import pytest

from buurtkracht_kit import logs

pytestmark = pytest.mark.unit


@pytest.fixture
def root_logger():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_a_line_written_while_handling_an_event_carries_its_id(capsys, root_logger):
    logs.configure("vouchers", "INFO", "json")
    logger = logging.getLogger("vouchers.test")
    with logs.event_context("6f1c-event", "nl.buurtkracht.initiatives.initiative-approved.v1"):
        logger.info("applied")
    logger.info("idle")
    first, second = (json.loads(line) for line in capsys.readouterr().out.splitlines()[-2:])
    assert first["message"] == "applied" and first["service"] == "vouchers" and first["event_id"] == "6f1c-event"
    assert first["event_type"] == "nl.buurtkracht.initiatives.initiative-approved.v1"
    assert second["message"] == "idle" and "event_id" not in second
