"""`make chaos`: the three services as processes on the local stack, a steady load of pledges with
Idempotency-Keys and of claims and payouts, faults injected at random moments from a printed seed, and an
independent check afterwards.

    python -m tests.chaos.run --seconds 600 [--seed N] [--rate 8] [--residents 40] [--initiatives 8] [--serial]

Prints one line per fault, then what an operator saw per kind of fault (the signals of the alert rules, the most
each moved in a window of that kind), then the summary (one JSON object, the last line), and exits 1 on anything
lost, doubled, out of order, dead-lettered or out of balance. `--serial` injects one fault at a time, each kind
in turn, with pauses long enough that each window shows one fault alone. The stack's PostgreSQL and Kafka are
restarted by the faults: run it on a stack nothing else uses.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..system import running_system
from . import check, faults, load, watch

DRAIN_SECONDS = 180.0
SETTLE_SECONDS = 15.0  # a fault's window lasts this long after it healed: what it set moving comes back to rest


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
    pause: tuple[float, float] = (1.0, 5.0),
    serial: bool = False,
) -> tuple[check.Findings, dict[str, Any]]:
    """One run; the checker's findings and the run's figures. In each lane a fault comes `pause` seconds (drawn
    between the two bounds) after the last one healed."""
    rng = random.Random(seed)
    say(f"chaos: seed {seed}, {seconds:.0f} s of load at {rate}/s, faults: {', '.join(kinds)}")
    settings = {"BK_SHUTDOWN_GRACE_SECONDS": "5"}
    async with running_system(bootstrap, folders, "chaos", settings) as system:
        population = await load.prepare(system, residents, initiatives)
        ledger = load.Ledger()
        injector = faults.Faults(system, random.Random(rng.getrandbits(64)), kinds, every=pause, serial=serial, say=say)
        started = injector.started = time.monotonic()
        watcher, watching = watch.Watch(system, bootstrap, started), asyncio.Event()
        sampling = asyncio.create_task(watcher.run(watching))
        await asyncio.gather(
            load.pledge_at_rate(system, population, ledger, rate, seconds, random.Random(rng.getrandbits(64))),
            load.claim_and_pay(system, population, ledger, seconds, random.Random(rng.getrandbits(64))),
            load.propose_and_approve(system, population, ledger, seconds, random.Random(rng.getrandbits(64))),
            injector.run(seconds),
        )
        say(f"load done after {time.monotonic() - started:.0f} s; draining")
        watching.set()
        await sampling
        say("what an operator saw, per kind of fault (the most each signal moved in one window of the kind):")
        quiet = watcher.window(0, min((f.began for f in injector.history), default=seconds))
        say(f"  {'before the first fault':<24} {_signals(quiet)}")
        for kind, moved in sorted(watch.by_kind(watcher, injector.history, SETTLE_SECONDS).items()):
            say(f"  {kind:<24} {_signals(moved)}")
        whole = watcher.window(0, float("inf"))
        seen = {name: value for name, value in whole.items() if name.endswith(("http_500", "http_503", "duplicates"))}
        deadline = time.monotonic() + DRAIN_SECONDS
        while (waiting := await _waiting(system, watcher)) and any(waiting.values()):
            if time.monotonic() > deadline:
                say(f"still waiting after {DRAIN_SECONDS:.0f} s: {waiting}")
                break
            await asyncio.sleep(1)
        await asyncio.sleep(5)  # the consumers apply what the relays published last
        findings = await check.check(system, ledger, population, bootstrap)
        for service, process in system.processes.items():
            if process.returncode is not None:
                findings.lost.append(f"{service} is not running at the end (exit {process.returncode})")
    used = resource.getrusage(resource.RUSAGE_SELF)
    figures = {
        "seed": seed,
        "load_generator_cpu_s": round(used.ru_utime + used.ru_stime, 1),  # the load, the faults, the sinks, the checker
        "seconds": seconds,
        "rate": rate,
        **{f"requests_{name}": n for name, n in ledger.counts().items()},
        "faults": sum(injector.injected.values()),
        **{f"faults_{kind}": n for kind, n in sorted(injector.injected.items())},
        **{f"seen_{name}": int(value) for name, value in seen.items()},
        **findings.summary(),
    }
    return findings, figures


async def _waiting(system: Any, watcher: watch.Watch) -> dict[str, int]:
    """What is still due: outboxes, e-mail, webhooks, and the records each consumer group has yet to apply."""
    lags = await watcher.lag()
    return await check.drained(system) | {f"{s}.lag": 1 if lag is None else lag for s, lag in lags.items()}


def _signals(moved: dict[str, float]) -> str:
    return ", ".join(f"{name} {value:g}" for name, value in sorted(moved.items())) or "nothing moved"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=600)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--rate", type=float, default=8.0, help="pledges per second")
    parser.add_argument("--residents", type=int, default=40)
    parser.add_argument("--initiatives", type=int, default=8)
    parser.add_argument("--faults", default=",".join(faults.KINDS), help="the kinds to inject, comma-separated")
    parser.add_argument("--serial", action="store_true", help="a fault at a time, each kind in turn")
    arguments = parser.parse_args()
    kinds = tuple(arguments.faults.split(","))
    unknown = set(kinds) - set(faults.KINDS)
    if unknown:
        parser.error(f"unknown faults {sorted(unknown)}; known: {', '.join(faults.KINDS)}")
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # the watcher's clients while a broker is down
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
            pause=(SETTLE_SECONDS + 1, SETTLE_SECONDS + 5) if arguments.serial else (1.0, 5.0),
            serial=arguments.serial,
        )
    )
    for line in findings.problems[:50]:
        print(f"  ! {line}")
    print(json.dumps(figures))
    return 0 if findings.clean else 1


if __name__ == "__main__":
    sys.exit(main())
