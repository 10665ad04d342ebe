"""A three-broker cluster shaped like production (replication factor 3, min.insync.replicas 2) loses a broker
to SIGKILL while an idempotent producer writes with acks=all: every acknowledged record is still there,
exactly once and in order in its partition, and the broker comes back and catches up.

The cluster is the local stack's Kafka with KAFKA_BROKERS=3, started by this module on free ports in a
directory of its own (the jars come from the running stack's cache), and stopped however the test ends.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import socket
import subprocess
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError

from buurtkracht_contracts.topics import TopicSpec
from buurtkracht_kit import topics

from ..integration.kit_domain import read_topic

pytestmark = pytest.mark.fault

ROOT = Path(__file__).parents[2]
KAFKA_SH = ROOT / "deploy/local/kafka.sh"
STACK_SH = ROOT / "deploy/local/stack.sh"
BROKERS = 3
PORT_STEP = 10  # node N: KAFKA_PORT + 10*(N-1), controller KAFKA_CONTROLLER_PORT + 10*(N-1)
TOPIC = "chaos.records"
PARTITIONS = 3


def free_port_block() -> int:
    """A client port P such that P and P+1 (the controller), for every node, are free; below the
    ephemeral range, so no outgoing connection takes one of them in the meantime."""
    for _ in range(200):
        base = random.randrange(20_000, 32_000)
        ports = [base + offset + PORT_STEP * node for node in range(BROKERS) for offset in (0, 1)]
        try:
            for port in ports:
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise RuntimeError("no free block of ports for a three-broker cluster")


def jar_cache() -> Path:
    """The stack's jar cache (make exports CACHE_DIR; else the default under LOCAL_DIR)."""
    local_dir = Path(os.environ.get("LOCAL_DIR", ROOT / ".local"))
    cache = Path(os.environ.get("CACHE_DIR", local_dir / "cache"))
    if not list(cache.glob("kafka-*/libs/.complete")):
        pytest.fail(f"no Kafka jars in {cache}; `make stack-up` fetches them")
    return cache


def run(env: dict[str, str], *command: object, timeout: float) -> str:
    result = subprocess.run(
        [str(part) for part in command], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    output = result.stdout + result.stderr
    if result.returncode != 0:
        pytest.fail(f"{' '.join(map(str, command))} failed ({result.returncode}):\n{output}")
    return output


@pytest.fixture(scope="module")
def cluster():
    """(bootstrap servers, environment for the stack scripts) of a running three-broker cluster."""
    base = free_port_block()
    local_dir = tempfile.mkdtemp(prefix="bk-kafka-cluster-")
    # the settings reach the scripts through the environment; a make command line of the caller
    # (in MAKEFLAGS) must not override them when the scripts ask make for the others
    env = {name: value for name, value in os.environ.items() if name not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    env |= {
        "LOCAL_DIR": local_dir,
        "CACHE_DIR": str(jar_cache()),
        "KAFKA_BROKERS": str(BROKERS),
        "KAFKA_PORT": str(base),
        "KAFKA_CONTROLLER_PORT": str(base + 1),
        "KAFKA_START_TIMEOUT": "120",
    }
    bootstrap = ",".join(f"127.0.0.1:{base + PORT_STEP * node}" for node in range(BROKERS))
    try:
        started = time.monotonic()
        run(env, KAFKA_SH, "up", timeout=180)
        print(f"three-broker cluster up in {time.monotonic() - started:.1f}s on {bootstrap}")
        yield bootstrap, env
    finally:
        stopping = time.monotonic()
        subprocess.run([str(KAFKA_SH), "down"], env=env, capture_output=True, timeout=120, check=False)
        print(f"three-broker cluster down in {time.monotonic() - stopping:.1f}s")
        shutil.rmtree(local_dir, ignore_errors=True)


async def stack(env: dict[str, str], *args: str) -> str:
    """Run `deploy/local/stack.sh ARGS`; its one line of output."""
    process = await asyncio.create_subprocess_exec(
        str(STACK_SH), *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=150)
    text = output.decode().strip()
    assert process.returncode == 0, f"stack.sh {' '.join(args)} failed:\n{text}"
    print(text)
    return text


async def described(admin: AIOKafkaAdminClient, timeout: float = 15.0) -> dict:
    """The topic as the cluster describes it once every partition has a leader: the broker asked may not know a
    topic created a moment ago (the controller's metadata reaches each broker in its own time), and then describes
    it with no partitions; asked again until one does, for at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        [description] = await admin.describe_topics([TOPIC])
        partitions = description["partitions"]
        if len(partitions) == PARTITIONS and all(partition["leader"] >= 0 for partition in partitions):
            return description
        if time.monotonic() > deadline:
            raise AssertionError(f"{TOPIC} not described with {PARTITIONS} led partitions: {description}")
        await asyncio.sleep(0.2)


async def topic_configs(admin: AIOKafkaAdminClient, timeout: float = 15.0) -> dict[str, str]:
    """The topic's configuration. The broker asked may not know a topic created a moment ago (the controller's
    metadata reaches each broker in its own time) and answers with an error code instead: asked again until one
    answers, for at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        [configs] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, TOPIC)])
        error_code, error_message, *_, entries = configs.resources[0]
        if error_code == 0:
            return {entry[0]: entry[1] for entry in entries}
        if time.monotonic() > deadline:
            raise AssertionError(f"describe_configs of {TOPIC}: error {error_code} {error_message}")
        await asyncio.sleep(0.2)


async def partitions_in_sync(admin: AIOKafkaAdminClient) -> bool:
    [description] = await admin.describe_topics([TOPIC])
    return all(len(partition["isr"]) == BROKERS for partition in description["partitions"])


async def test_a_broker_killed_under_acks_all_load_loses_no_acknowledged_record_and_duplicates_none(cluster):
    bootstrap, env = cluster
    # the replication factor is not given: ensure takes it from the cluster's size
    await topics.ensure({"bootstrap_servers": bootstrap}, [TopicSpec(TOPIC, PARTITIONS, 3_600_000)])
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        description = await described(admin)
        leaders = {partition["partition"]: partition["leader"] for partition in description["partitions"]}
        assert {len(partition["replicas"]) for partition in description["partitions"]} == {BROKERS}
        settings = await topic_configs(admin)
        assert settings["min.insync.replicas"] == "2"
        assert settings["unclean.leader.election.enable"] == "false"

        acknowledged: dict[int, list[tuple[int, int]]] = defaultdict(list)  # partition -> [(offset, sequence)]
        acknowledged_while_down = 0
        failed: list[BaseException] = []
        broker_down = asyncio.Event()
        stop = asyncio.Event()
        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5, request_timeout_ms=30_000
        )
        await producer.start()

        async def produce() -> None:
            nonlocal acknowledged_while_down
            sequence = 0
            while not stop.is_set():
                sent = []
                for _ in range(60):
                    partition = sequence % PARTITIONS
                    sent.append((sequence, await producer.send(TOPIC, str(sequence).encode(), partition=partition)))
                    sequence += 1
                for number, delivery in sent:
                    try:
                        metadata = await delivery
                    except KafkaError as error:  # not acknowledged: may or may not be on the topic
                        failed.append(error)
                        continue
                    acknowledged[metadata.partition].append((metadata.offset, number))
                    acknowledged_while_down += broker_down.is_set()
                await asyncio.sleep(0.01)

        producing = asyncio.create_task(produce())
        try:
            await asyncio.sleep(2)
            victim = leaders[0]  # a partition loses its leader, not only a follower
            await stack(env, "kafka-kill", str(victim))
            broker_down.set()
            # past the broker's session timeout (9 s): the controller fences it, moves leadership and
            # shrinks the ISRs; acks=all then needs the two brokers left
            await asyncio.sleep(12)
            await stack(env, "kafka-start", str(victim))
            broker_down.clear()
            await asyncio.sleep(2)
        finally:
            stop.set()
            await producing
            await producer.stop()

        total = sum(len(records) for records in acknowledged.values())
        assert total > 1_000, f"only {total} records acknowledged ({len(failed)} failed: {failed[:3]})"
        assert acknowledged_while_down > 0, "no record was acknowledged while a broker was down"

        deadline = time.monotonic() + 60
        while not await partitions_in_sync(admin):
            assert time.monotonic() < deadline, "the restarted broker did not rejoin every ISR within 60 s"
            await asyncio.sleep(1)
    finally:
        await admin.close()

    records = await read_topic(bootstrap, TOPIC, at_least=total)
    on_topic: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for record in records:
        on_topic[record.partition].append((record.offset, int(record.value)))
    sequences = [number for partition in on_topic.values() for _, number in partition]
    assert len(sequences) == len(set(sequences)), "a record was written twice"
    for partition, written in on_topic.items():
        numbers = [number for _, number in sorted(written)]
        assert numbers == sorted(numbers), f"partition {partition} is out of order"
        at_offset = dict(written)
        missing = [(offset, number) for offset, number in acknowledged[partition] if at_offset.get(offset) != number]
        assert not missing, f"partition {partition}: acknowledged records not at their offsets: {missing[:5]}"
    print(
        f"{total} records acknowledged ({acknowledged_while_down} while broker {victim} was down), "
        f"{len(failed)} sends failed, {len(records)} on the topic"
    )
