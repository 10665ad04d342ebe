"""Every Kafka topic, in one place: the producers' event topics and each consumer's dead-letter topic.

A topic is keyed by aggregate id, so the partition count bounds how many consumers of one group
can work in parallel; it is set here and used by the local stack, the tests and the manifests.
"""

from dataclasses import dataclass

INITIATIVES_EVENTS = "initiatives.events"
VOUCHERS_EVENTS = "vouchers.events"
NOTIFICATIONS_EVENTS = "notifications.events"

PRODUCERS = {
    "initiatives": INITIATIVES_EVENTS,
    "vouchers": VOUCHERS_EVENTS,
    "notifications": NOTIFICATIONS_EVENTS,
}
CONSUMER_GROUPS = ("initiatives", "vouchers", "notifications", "portal")
DEFAULT_PARTITIONS = 6


def dead_letter_topic(consumer_group: str) -> str:
    """The topic where `consumer_group` parks messages it could not process."""
    return f"{consumer_group}.dlq"


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int = DEFAULT_PARTITIONS
    retention_ms: int = 7 * 24 * 3600 * 1000


def all_topics(partitions: int = DEFAULT_PARTITIONS) -> list[TopicSpec]:
    """The event topics (kept 30 days, for replays) and dead-letter topics (kept 14 days)."""
    events = [TopicSpec(name, partitions, 30 * 24 * 3600 * 1000) for name in PRODUCERS.values()]
    dead_letters = [TopicSpec(dead_letter_topic(group), partitions, 14 * 24 * 3600 * 1000) for group in CONSUMER_GROUPS]
    return events + dead_letters
