"""`make chaos`: the three services as processes on the local stack, a steady load of pledges with
Idempotency-Keys, faults injected at random moments from a printed seed, and an independent check afterwards.

    python -m tests.chaos.run --seconds 600 [--seed N] [--rate 8] [--residents 40] [--initiatives 8]

Prints one line per fault, then the summary (one JSON object, the last line), and exits 1 on anything lost,
doubled, dead-lettered or out of balance. The stack's PostgreSQL and Kafka are restarted by the faults: run it on a
stack nothing else uses.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..system import running_system
from . import check, faults, load

DRAIN_SECONDS = 180.0


class Folders:
    """Temporary folders, as pytest's `tmp_path_factory` gives them."""

    def __init__(self) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="bk-chaos-"))

    def mktemp(self, name: str) -> Path:
        path = self.base / name
        path.mkdir()
        return path


async def chaos(
    bootstrap: str,
    folders: Any,
    seconds: float,
    seed: int,
    rate: float,
    residents: int = 40,
    initiatives: int = 8,
    kinds: tuple[str, ...] = faults.KINDS,
    say: Callable[[str], None] = print,
    pause: tuple[float, float] = (2.0, 8.0),
) -> tuple[check.Findings, dict[str, Any]]:
    """One run; the checker's findings and the run's figures. Faults come one after another, `pause` seconds (drawn
    between the two bounds) after the last one healed."""
    rng = random.Random(seed)
    say(f"chaos: seed {seed}, {seconds:.0f} s of load at {rate}/s, faults: {', '.join(kinds)}")
    settings = {"BK_SHUTDOWN_GRACE_SECONDS": "5"}
    async with running_system(bootstrap, folders, "chaos", settings) as system:
        population = await load.prepare(system, residents, initiatives)
        ledger = load.Ledger()
        injector = faults.Faults(system, random.Random(rng.getrandbits(64)), kinds, every=pause, say=say)
        started = time.monotonic()
        await asyncio.gather(
            load.pledge_at_rate(system, population, ledger, rate, seconds, random.Random(rng.getrandbits(64))),
            injector.run(seconds),
        )
        say(f"load done after {time.monotonic() - started:.0f} s; draining")
        deadline = time.monotonic() + DRAIN_SECONDS
        while (waiting := await check.drained(system)) and any(waiting.values()):
            if time.monotonic() > deadline:
                say(f"still waiting after {DRAIN_SECONDS:.0f} s: {waiting}")
                break
            await asyncio.sleep(1)
        await asyncio.sleep(5)  # the consumers apply what the relays published last
        findings = await check.check(system, ledger, population, bootstrap)
        for service, process in system.processes.items():
            if process.returncode is not None:
                findings.lost.append(f"{service} is not running at the end (exit {process.returncode})")
    figures = {
        "seed": seed,
        "seconds": seconds,
        "rate": rate,
        **{f"requests_{name}": n for name, n in ledger.counts().items()},
        "faults": sum(injector.injected.values()),
        **{f"faults_{kind}": n for kind, n in sorted(injector.injected.items())},
        **findings.summary(),
    }
    return findings, figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=600)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--rate", type=float, default=8.0, help="pledges per second")
    parser.add_argument("--residents", type=int, default=40)
    parser.add_argument("--initiatives", type=int, default=8)
    parser.add_argument("--faults", default=",".join(faults.KINDS), help="the kinds to inject, comma-separated")
    arguments = parser.parse_args()
    kinds = tuple(arguments.faults.split(","))
    unknown = set(kinds) - set(faults.KINDS)
    if unknown:
        parser.error(f"unknown faults {sorted(unknown)}; known: {', '.join(faults.KINDS)}")
    seed = arguments.seed if arguments.seed is not None else random.SystemRandom().getrandbits(32)
    bootstrap = os.environ.get("BK_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:19092")
    findings, figures = asyncio.run(
        chaos(
            bootstrap,
            Folders(),
            arguments.seconds,
            seed,
            arguments.rate,
            arguments.residents,
            arguments.initiatives,
            kinds,
        )
    )
    for line in (findings.lost + findings.doubled + findings.ledger + findings.dead_letters)[:50]:
        print(f"  ! {line}")
    print(json.dumps(figures))
    return 0 if findings.clean else 1


if __name__ == "__main__":
    sys.exit(main())
