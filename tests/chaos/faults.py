"""The faults of a chaos run, injected at random moments drawn from the run's seed (so a run is reproducible from
its seed, up to the timing of the machine). Each fault heals itself after a while; one line is printed per fault.

Kinds:
- `kill:<service>`: SIGKILL of one service process (mid-request, mid-batch, between a database commit and the
  answer or the offset commit: wherever it happens to be), restarted after a pause;
- `postgres:fast` and `postgres:immediate`: the stack's PostgreSQL stopped (fast: sessions ended cleanly;
  immediate: no checkpoint, crash recovery at the start) and started again;
- `kafka:restart`: a Kafka broker stopped cleanly and started again; `kafka:kill`: one SIGKILLed (of three, with
  `KAFKA_BROKERS=3`: the cluster goes on with two, min.insync.replicas 2; of one: the bus is gone until it is back);
- `smtp:down` and `webhook:down`: the mail server and the integration's endpoint refuse everything for a while.
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
KINDS = (
    *(f"kill:{service}" for service in SERVICES),
    "postgres:fast",
    "postgres:immediate",
    "kafka:restart",
    "kafka:kill",
    "smtp:down",
    "webhook:down",
)


@dataclass
class Faults:
    system: System
    rng: random.Random
    kinds: tuple[str, ...] = KINDS
    every: tuple[float, float] = (2.0, 8.0)  # seconds between one fault's end and the next one's start
    say: Callable[[str], None] = print
    injected: Counter[str] = field(default_factory=Counter)
    started: float = field(default_factory=time.monotonic)

    async def run(self, seconds: float) -> None:
        """Inject faults one after another for `seconds`; every fault has healed when this returns."""
        deadline = self.started + seconds
        while time.monotonic() < deadline:
            await asyncio.sleep(self.rng.uniform(*self.every))
            if time.monotonic() >= deadline:
                break
            kind = self.rng.choice(self.kinds)
            began = time.monotonic()
            await self.inject(kind)
            self.injected[kind] += 1
            self.say(
                f"[{began - self.started:6.1f}s] fault {sum(self.injected.values()):3d}: {kind:<22} "
                f"healed after {time.monotonic() - began:5.1f}s"
            )

    async def inject(self, kind: str) -> None:
        what, _, detail = kind.partition(":")
        if what == "kill":
            await self.system.kill(detail)
            await asyncio.sleep(self.rng.uniform(0.2, 3.0))
            await self.system.start(detail)
            await self.system.ready(detail, timeout=120)
        elif what == "postgres":
            await _stack("pg-restart", detail)
        elif what == "kafka":
            node = str(self.rng.randint(1, BROKERS))
            await _stack("kafka-stop" if detail == "restart" else "kafka-kill", node)
            await asyncio.sleep(self.rng.uniform(1.0, 5.0))
            await _stack("kafka-start", node)
        elif what in ("smtp", "webhook"):
            sink = self.system.mailbox if what == "smtp" else self.system.hooks
            sink.down = True
            await asyncio.sleep(self.rng.uniform(2.0, 10.0))
            sink.down = False
        else:
            raise ValueError(f"unknown fault {kind}")


async def _stack(*arguments: str) -> None:
    process = await asyncio.create_subprocess_exec(
        str(STACK), *arguments, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    output = (await process.communicate())[0].decode(errors="replace")
    if process.returncode != 0:
        raise RuntimeError(f"stack.sh {' '.join(arguments)} failed: {output[-2000:]}")
