"""HTTP overhead: how many authenticated reads one vouchers service answers, and the CPU each costs it.

Starts the vouchers service as its own process on a scratch database, opens a round as an official, then
has a compiled closed-loop load generator (Go, standard library only, built once into `.local/bench/`)
send `GET /api/v1/rounds/{id}` with a resident's bearer token, `--concurrency` requests in flight over
kept-alive connections, for `--seconds` after a warm-up. Each request verifies the token, reads the round
and its totals in one unit of work, and answers JSON: the path every API call shares.

Figures: requests answered per second (2xx only; anything else is counted apart and fails the run), the
service's CPU per request in milliseconds (the service process and its worker processes, from /proc), the
cores used by the service and by the generator, latency p50/p99. The machine is shared: compare runs made
in the same hour, and the CPU per request before the rate.

    .venv/bin/python bench/http_overhead.py
    .venv/bin/python bench/http_overhead.py --service-env BK_HTTP_WORKERS=2 --service-env BK_PROCESS_ROLE=api

Progress and the summary go to stderr; the last line on stdout is the figures as one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from _stack import REPO, ServiceProcess, key_pair, log, report, scratch_database, signing_key, token
from vouchers.app import SPEC

from buurtkracht_kit import migrations

WIJK = "WK036300"
BUURT = "BU03630001"
_TICK = os.sysconf("SC_CLK_TCK")

GENERATOR = r"""
package main

import (
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"os"
	"sort"
	"sync"
	"time"
)

func main() {
	url := flag.String("url", "", "")
	bearer := flag.String("token", "", "")
	concurrency := flag.Int("c", 16, "")
	seconds := flag.Float64("s", 10, "")
	flag.Parse()
	transport := &http.Transport{
		MaxIdleConns: *concurrency, MaxIdleConnsPerHost: *concurrency, DisableCompression: true,
	}
	client := &http.Client{Transport: transport, Timeout: 30 * time.Second}
	deadline := time.Now().Add(time.Duration(*seconds * float64(time.Second)))
	var mu sync.Mutex
	statuses := map[int]int{}
	latencies := []float64{}
	var wg sync.WaitGroup
	started := time.Now()
	for i := 0; i < *concurrency; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := map[int]int{}
			mine := []float64{}
			for time.Now().Before(deadline) {
				request, _ := http.NewRequest("GET", *url, nil)
				request.Header.Set("Authorization", "Bearer "+*bearer)
				sent := time.Now()
				response, err := client.Do(request)
				status := 0
				if err == nil {
					io.Copy(io.Discard, response.Body)
					response.Body.Close()
					status = response.StatusCode
				}
				local[status]++
				mine = append(mine, time.Since(sent).Seconds()*1000)
			}
			mu.Lock()
			for k, v := range local {
				statuses[k] += v
			}
			latencies = append(latencies, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(started).Seconds()
	sort.Float64s(latencies)
	pick := func(f float64) float64 {
		if len(latencies) == 0 {
			return 0
		}
		i := int(f*float64(len(latencies))+0.5) - 1
		if i < 0 {
			i = 0
		}
		if i >= len(latencies) {
			i = len(latencies) - 1
		}
		return latencies[i]
	}
	out := map[string]interface{}{"seconds": elapsed, "statuses": statuses, "p50_ms": pick(0.5), "p99_ms": pick(0.99)}
	json.NewEncoder(os.Stdout).Encode(out)
}
"""


def generator_binary() -> Path:
    """The load generator, compiled once per source (Go's standard library only: nothing is downloaded)."""
    digest = hashlib.sha256(GENERATOR.encode()).hexdigest()[:12]
    folder = Path(os.environ.get("BK_LOCAL_DIR", REPO / ".local")) / "bench"
    binary = folder / f"closed-loop-{digest}"
    if binary.exists():
        return binary
    go = shutil.which("go") or "/usr/local/go/bin/go"
    folder.mkdir(parents=True, exist_ok=True)
    source = folder / f"closed-loop-{digest}.go"
    source.write_text(GENERATOR)
    env = os.environ | {"GO111MODULE": "off", "GOFLAGS": "", "CGO_ENABLED": "0"}
    subprocess.run([go, "build", "-o", str(binary), str(source)], check=True, env=env, cwd=folder)
    return binary


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) of `pid` and every live process below it, from /proc."""
    children: dict[int, list[int]] = {}
    times: dict[int, float] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as stat:
                text = stat.read()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2 :].split()
        children.setdefault(int(fields[1]), []).append(int(entry.name))
        times[int(entry.name)] = (int(fields[11]) + int(fields[12])) / _TICK
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        total += times.get(current, 0.0)
        todo.extend(children.get(current, []))
    return total


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def profile(pid: int, path: str, seconds: float) -> subprocess.Popen[bytes]:
    """py-spy sampling the service (and its worker processes) while the generator runs; `.txt` gives
    collapsed stacks, anything else a flame graph."""
    spy = shutil.which("py-spy") or str(Path.home() / ".local" / "bin" / "py-spy")
    kind = "raw" if path.endswith(".txt") else "flamegraph"
    command = [spy, "record", "--pid", str(pid), "--subprocesses", "--nonblocking", "--rate", "250"]
    command += ["--duration", str(int(seconds)), "--format", kind, "--output", path]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def closed_loop(binary: Path, url: str, bearer: str, concurrency: int, seconds: float) -> dict:
    done = subprocess.run(
        [str(binary), "-url", url, "-token", bearer, "-c", str(concurrency), "-s", str(seconds)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(done.stdout)


async def main(args: argparse.Namespace) -> tuple[int, str, dict[str, object]]:
    binary = await asyncio.to_thread(generator_binary)
    private_pem, public_pem = key_pair()
    key = signing_key(private_pem)
    official = {"Authorization": "Bearer " + token(key, "o-bench", ["official"], [WIJK])}
    resident = token(key, "r-bench", ["resident"], [BUURT])
    async with scratch_database("bench_http") as database_url:
        await asyncio.to_thread(migrations.apply, database_url, SPEC.migrations)
        service = ServiceProcess(
            database_url,
            public_pem,
            pool_max_size=args.pool_size,
            extra_env=dict(pair.split("=", 1) for pair in args.service_env),
        )
        code = 0
        try:
            ready = await service.start()
            log(f"service ready on {service.base_url} in {ready:.1f} s (pid {service.pid})")
            now = datetime.now(UTC)
            async with httpx.AsyncClient(base_url=service.base_url, timeout=30.0) as client:
                created = await client.post(
                    "/api/v1/rounds",
                    headers=official | {"Idempotency-Key": f"round-{uuid.uuid4()}"},
                    json={
                        "area_code": WIJK,
                        "name": "Leesronde",
                        "total_budget_cents": 1_000_000,
                        "opens_at": (now - timedelta(minutes=1)).isoformat(),
                        "closes_at": (now + timedelta(days=30)).isoformat(),
                        "mechanism": "pledge",
                        "voucher_amount_cents": 2_500,
                        "allow_wallet_claims": True,
                    },
                )
                created.raise_for_status()
            url = f"{service.base_url}/api/v1/rounds/{created.json()['id']}"
            await asyncio.to_thread(closed_loop, binary, url, resident, args.concurrency, args.warmup_seconds)
            profiler = profile(service.pid, args.py_spy, args.seconds) if args.py_spy else None
            service_before, generator_before = tree_cpu_seconds(service.pid), children_cpu_seconds()
            result = await asyncio.to_thread(closed_loop, binary, url, resident, args.concurrency, args.seconds)
            service_used = tree_cpu_seconds(service.pid) - service_before
            generator_used = children_cpu_seconds() - generator_before
            if profiler is not None:
                await asyncio.to_thread(profiler.wait)
                log(f"profile of the measured phase: {args.py_spy}")
        finally:
            exit_code, stopping = await service.stop()
            log(f"service stopped by SIGTERM: exit code {exit_code} after {stopping:.1f} s")
            if not service.clean_exit(exit_code):
                log("service log:\n" + service.log_tail())
                code = 1
            service.cleanup()
    statuses = {int(status): count for status, count in result["statuses"].items()}
    answered = sum(count for status, count in statuses.items() if 200 <= status < 300)
    failed = sum(statuses.values()) - answered
    if failed:
        code = 1
    wall = result["seconds"]
    figures: dict[str, object] = {
        "requests_per_s": answered / wall,
        "requests": answered,
        "failed": failed,
        "cpu_ms_per_request": 1000 * service_used / max(answered, 1),
        "service_cores": service_used / wall,
        "generator_cores": generator_used / wall,
        "p50_ms": result["p50_ms"],
        "p99_ms": result["p99_ms"],
        "concurrency": args.concurrency,
        "seconds": wall,
        "service_env": dict(pair.split("=", 1) for pair in args.service_env),
        "ok": code == 0,
    }
    summary = (
        f"{figures['requests_per_s']:.0f} requests/s, {figures['cpu_ms_per_request']:.2f} ms service CPU each "
        f"(service {figures['service_cores']:.2f}, generator {figures['generator_cores']:.2f} cores), "
        f"p50 {result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms, {failed} failed"
    )
    return code, summary, figures


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--warmup-seconds", type=float, default=3.0)
    parser.add_argument("--pool-size", type=int, default=10)
    parser.add_argument("--py-spy", metavar="PATH", help="profile the service with py-spy while measuring")
    parser.add_argument("--service-env", action="append", default=[], metavar="BK_NAME=VALUE")
    return parser.parse_args(argv)


if __name__ == "__main__":
    exit_code, text, numbers = asyncio.run(main(parse(sys.argv[1:])))
    report(text, numbers)
    sys.exit(exit_code)
