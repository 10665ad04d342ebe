"""Creates the topics of `buurtkracht_contracts.topics` explicitly (the broker never auto-creates them).

A topic gets as many copies as the cluster can hold, up to three: on a cluster of three brokers or
more an acknowledged event survives the loss of one broker (min.insync.replicas 2), and a single
development broker still works (one copy).
"""

from __future__ import annotations

import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from buurtkracht_contracts.topics import TopicSpec

logger = logging.getLogger(__name__)

MAX_REPLICATION_FACTOR = 3


async def ensure(
    client_options: dict[str, object], specs: list[TopicSpec], replication_factor: int | None = None
) -> list[str]:
    """Create the topics that do not exist yet; returns the names created. Existing topics are left as they are.

    Without a `replication_factor`, each topic gets min(3, brokers in the cluster), counted from the
    cluster's metadata (which lists the brokers serving now).
    """
    admin = AIOKafkaAdminClient(**client_options)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [spec for spec in specs if spec.name not in existing]
        if missing:
            if replication_factor is None:
                brokers = len((await admin.describe_cluster())["brokers"])
                replication_factor = min(MAX_REPLICATION_FACTOR, brokers)
            await admin.create_topics(
                [
                    NewTopic(
                        spec.name,
                        num_partitions=spec.partitions,
                        replication_factor=replication_factor,
                        topic_configs={
                            "retention.ms": str(spec.retention_ms),
                            # an acknowledged event survives the loss of one broker, and no out-of-date
                            # replica is ever made leader (it would drop acknowledged events)
                            "min.insync.replicas": "2" if replication_factor >= 3 else "1",
                            "unclean.leader.election.enable": "false",
                        },
                    )
                    for spec in missing
                ]
            )
            logger.info(
                "topics created with replication factor %d: %s", replication_factor, [spec.name for spec in missing]
            )
        return [spec.name for spec in missing]
    finally:
        await admin.close()
