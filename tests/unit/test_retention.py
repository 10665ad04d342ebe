"""How long the kit keeps the rows that recognise a redelivered message."""

import pytest
from pydantic import ValidationError

from buurtkracht_contracts.topics import all_topics
from buurtkracht_kit.settings import KitSettings

pytestmark = pytest.mark.unit


def settings(**values) -> KitSettings:
    return KitSettings(service_name="housekeeping-test", database_url="postgresql://unused/unused", **values)


def test_an_inbox_row_outlives_every_topic_retention():
    longest_days = max(spec.retention_ms for spec in all_topics()) / 86_400_000
    assert settings().inbox_retention_days > longest_days
    with pytest.raises(ValidationError, match="inbox_retention_days"):
        settings(inbox_retention_days=longest_days)
