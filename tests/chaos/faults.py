"""The faults of a chaos run, injected at random moments drawn from the run's seed (so a run is reproducible from
its seed, up to the timing of the machine). Faults come in lanes that run at the same time, one fault at a time
each: the processes of each service, the database, the bus and the outside world can fail together, as they do on
a bad day.
Every fault heals itself after a while; one line is printed per fault.

Kinds, by lane:
- processes (a lane per service): `kill:<service>`, SIGKILL of the service's process (mid-request, mid-batch,
  between a database commit and the answer or the offset commit: wherever it happens to be), started again after
  a pause, and again if it exits on its way up; `rebalance:<service>`, a second replica joins the consumer group
  (its partitions move), then one of the two is SIGKILLed or scaled down with SIGTERM; `stall:vouchers`, the
  process SIGSTOPped for seconds (clients time out and retry with the same Idempotency-Key), then continued;
- database: `postgres:fast` and `postgres:immediate`, the stack's PostgreSQL stopped (fast: sessions ended
  cleanly; immediate: no checkpoint, crash recovery at the start) and started again; `postgres:stall`, every
  PostgreSQL process SIGSTOPped for seconds (a stalled disk), then continued;
- bus: `kafka:restart`, a Kafka broker stopped cleanly and started again; `kafka:kill`, one SIGKILLed (of three,
  with `KAFKA_BROKERS=3`: the cluster goes on with two, min.insync.replicas 2; of one: the bus is gone until it
  is back);
- outside: `smtp:down` and `webhook:down`, the mail server and the integration's endpoint refuse everything for a
  while.
"""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from ..system import ROOT, SERVICES, System

STACK = ROOT / "deploy" / "local" / "stack.sh"
BROKERS = int(os.environ.get("KAFKA_BROKERS", "1"))  # the stack's setting (stack.mk)
LANES = {  # the processes of each service have a lane of their own: pods of different services fail independently
    **{
        f"processes:{service}": (
            f"kill:{service}",
            f"rebalance:{service}",
            *(("stall:vouchers",) if service == "vouchers" else ()),
        )
        for service in SERVICES
    },
    "database": ("postgres:fast", "postgres:immediate", "postgres:stall"),
    "bus": ("kafka:restart", "kafka:kill"),
    "outside": ("smtp:down", "webhook:down"),
}
KINDS = tuple(kind for kinds in LANES.values() for kind in kinds)


@dataclass
class Fault:
    kind: str
    began: float  # seconds into the run
    healed: float | None = None
    detail: str = ""


@dataclass
class Faults:
    system: System
    rng: random.Random
    kinds: tuple[str, ...] = KINDS
    every: tuple[float, float] = (1.0, 5.0)  # seconds between one fault's end and the next one's start, per lane
    serial: bool = False  # one lane for every kind: a fault at a time, each kind in turn (in an order of the seed)
    say: Callable[[str], None] = print
    injected: Counter[str] = field(default_factory=Counter)
    history: list[Fault] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    async def run(self, seconds: float) -> None:
        """Inject faults for `seconds`, one lane per kind of part (or one lane with `serial`); every fault has
        healed when this returns."""
        lanes = [self.kinds] if self.serial else [tuple(k for k in lane if k in self.kinds) for lane in LANES.values()]
        rngs = [random.Random(self.rng.getrandbits(64)) for _ in lanes]
        await asyncio.gather(*(self._lane(k, rng, seconds) for k, rng in zip(lanes, rngs, strict=True) if k))

    async def _lane(self, kinds: tuple[str, ...], rng: random.Random, seconds: float) -> None:
        deadline = self.started + seconds
        turns = rng.sample(kinds, len(kinds))
        while time.monotonic() < deadline:
            await asyncio.sleep(rng.uniform(*self.every))
            if time.monotonic() >= deadline:
                break
            kind = turns[len(self.history) % len(turns)] if self.serial else rng.choice(kinds)
            fault = Fault(kind, time.monotonic() - self.started)
            self.history.append(fault)
            number = len(self.history)
            self.injected[fault.kind] += 1
            fault.detail = await self.inject(fault.kind, rng) or ""
            fault.healed = time.monotonic() - self.started
            self.say(
                f"[{fault.began:6.1f}s] fault {number:3d}: {fault.kind:<24} healed after "
                f"{fault.healed - fault.began:5.1f}s {fault.detail}".rstrip()
            )

    async def inject(self, kind: str, rng: random.Random) -> str | None:
        """Inject one fault and wait until it healed; a few words on what happened."""
        what, _, detail = kind.partition(":")
        system = self.system
        if what == "kill":
            await system.kill(detail)
            await asyncio.sleep(rng.uniform(0.2, 3.0))
            starts = await system.start_until_ready(detail)
            return f"(started {starts}x)" if starts > 1 else None
        if what == "rebalance":
            extra = f"{detail}#2"
            starts = await system.start_until_ready(extra)
            await asyncio.sleep(rng.uniform(2.0, 8.0))
            how = rng.choice(("kill the new one", "scale down", "kill the old one"))
            if how == "kill the new one":
                await system.kill(extra)
                system.forget(extra)
            elif how == "scale down":
                await system.stop(extra)
            else:
                await system.kill(detail)  # the new replica holds every partition until the old one is back
                await asyncio.sleep(rng.uniform(1.0, 5.0))
                await system.start_until_ready(detail)
                await system.stop(extra)
            return f"({how}{f', started {starts}x' if starts > 1 else ''})"
        if kind == "stall:vouchers":
            seconds = rng.uniform(3.0, 12.0)
            system.pause(detail)
            try:
                await asyncio.sleep(seconds)
            finally:
                system.resume(detail)
            return f"({seconds:.1f}s stopped)"
        if kind == "postgres:stall":
            return await _stack("pg-freeze", f"{rng.uniform(2.0, 10.0):.1f}")
        if what == "postgres":
            return await _stack("pg-restart", detail)
        if what == "kafka":
            node = str(rng.randint(1, BROKERS))
            await _stack("kafka-stop" if detail == "restart" else "kafka-kill", node)
            await asyncio.sleep(rng.uniform(1.0, 5.0))
            await _stack("kafka-start", node)
            return f"(node {node} of {BROKERS})"
        if what in ("smtp", "webhook"):
            sink = system.mailbox if what == "smtp" else system.hooks
            sink.down = True
            await asyncio.sleep(rng.uniform(2.0, 10.0))
            sink.down = False
            return None
        raise ValueError(f"unknown fault {kind}")


async def _stack(*arguments: str) -> str:
    """Run stack.sh; its last line (what it did, how long it took)."""
    process = await asyncio.create_subprocess_exec(
        str(STACK), *arguments, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    output = (await process.communicate())[0].decode(errors="replace")
    if process.returncode != 0:
        raise RuntimeError(f"stack.sh {' '.join(arguments)} failed: {output[-2000:]}")
    return ""
