"""Tracing's cost to the voucher day: alternating runs of `bench/voucher_day.py` without and with tracing, in pairs.

One run against one is noise on a shared machine (the same run differs by 20 % from one minute to the next), so this
runs `--pairs` pairs one after the other, the order inside a pair alternating (off then on, on then off, so neither
side always follows the other), and sets each traced run against the untraced run of its pair:

- the change in the ratio to pgbench `-N` (the yardstick each run measures for itself) and in accepted pledges a
  second, per pair, with their mean, standard error and median;
- the vouchers service's CPU per accepted pledge (its cores over its rate, from /proc), the mean of each side, and
  every party's (the services, PostgreSQL, Kafka, the benchmark and its generator, others: the trace backend among
  them): with the machine's cores full on both sides, the rate follows what a pledge costs all of them together.

The traced runs export all three services' spans to `--otlp-endpoint` (Jaeger from `make observability-up`) at
`--trace-sample-ratio`. Needs the local stack (`make stack-up topics`); each run takes about a minute.

    .venv/bin/python bench/tracing_cost.py --pairs 10
    .venv/bin/python bench/tracing_cost.py --pairs 6 --trace-sample-ratio 0.1

Progress goes to stderr, each run's own figures to `--keep DIR` if given; the last line on stdout is the figures as
one JSON object (`ratio_change_mean`, `rate_change_mean`, ... as fractions; `ok` false when a run failed its checks).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

from _stack import REPO, log, report

RUN_ARGUMENTS = ["--pgbench-seconds", "5", "--open-seconds", "0"]  # the yardstick and the closed loop only


def run(traced: bool, arguments: argparse.Namespace, keep: Path | None, name: str) -> dict[str, object]:
    """One voucher day; its figures (the last line of its stdout)."""
    command = [sys.executable, str(REPO / "bench" / "voucher_day.py"), *RUN_ARGUMENTS]
    if traced:
        command += [
            "--otlp-endpoint",
            arguments.otlp_endpoint,
            "--trace-sample-ratio",
            str(arguments.trace_sample_ratio),
        ]
    finished = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
    if keep is not None:
        (keep / f"{name}.out").write_text(finished.stdout)
        (keep / f"{name}.err").write_text(finished.stderr)
    lines = finished.stdout.strip().splitlines()
    if not lines:
        raise RuntimeError(
            f"{name}: voucher_day.py printed no figures (exit {finished.returncode}):\n{finished.stderr}"
        )
    figures = json.loads(lines[-1])
    cores = figures["closed"]["cpu_cores"]["service"]
    log(
        f"{name}: {figures['pledges_per_s']:.0f} pledges/s, ratio {figures['ratio']:.4f}, "
        f"pgbench {figures['pgbench_tps']:.0f} tps, vouchers {cores:.2f} cores"
    )
    return figures


def changes(pairs: list[tuple[dict, dict]], key: str) -> dict[str, object]:
    """Per pair, traced over untraced minus one; with their mean, standard error and median."""
    values = [traced[key] / untraced[key] - 1 for untraced, traced in pairs]
    error = statistics.stdev(values) / len(values) ** 0.5 if len(values) > 1 else None
    return {"per_pair": values, "mean": statistics.mean(values), "stderr": error, "median": statistics.median(values)}


def cpu_per_pledge_ms(figures: dict, party: str) -> float:
    """A party's CPU over the closed loop per accepted pledge (`all`: every party's, the trace backend in `others`)."""
    cores = figures["closed"]["cpu_cores"]
    used = sum(cores.values()) if party == "all" else cores[party]
    return used / figures["pledges_per_s"] * 1000


def cpu_by_party(runs: list[dict]) -> dict[str, float]:
    """Each party's CPU per accepted pledge, in ms, the mean over `runs`."""
    parties = [*runs[0]["closed"]["cpu_cores"], "all"]
    return {party: statistics.mean(cpu_per_pledge_ms(figures, party) for figures in runs) for party in parties}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=10, help="pairs of runs, untraced and traced")
    parser.add_argument(
        "--otlp-endpoint", default="http://127.0.0.1:16687", help="OTLP/HTTP endpoint of the traced runs"
    )
    parser.add_argument("--trace-sample-ratio", type=float, default=1.0)
    parser.add_argument("--keep", metavar="DIR", help="keep each run's stdout and stderr in DIR")
    arguments = parser.parse_args()
    keep = Path(arguments.keep) if arguments.keep else None
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
    pairs: list[tuple[dict, dict]] = []
    for number in range(1, arguments.pairs + 1):
        order = (False, True) if number % 2 else (True, False)
        done = {traced: run(traced, arguments, keep, f"pair-{number}-{'on' if traced else 'off'}") for traced in order}
        pairs.append((done[False], done[True]))
    ratio, rate = changes(pairs, "ratio"), changes(pairs, "pledges_per_s")
    untraced_cpus = cpu_by_party([untraced for untraced, _ in pairs])
    traced_cpus = cpu_by_party([traced for _, traced in pairs])
    untraced_cpu, traced_cpu = untraced_cpus["service"], traced_cpus["service"]
    ok = all(untraced["ok"] and traced["ok"] for untraced, traced in pairs)
    summary = (
        f"tracing at {arguments.trace_sample_ratio:.0%} over {len(pairs)} pairs: ratio to pgbench "
        f"{ratio['mean']:+.1%} (median {ratio['median']:+.1%}), pledges/s {rate['mean']:+.1%} "
        f"(median {rate['median']:+.1%})"
        + (f", standard error {rate['stderr']:.1%}" if rate["stderr"] is not None else "")
        + f"; vouchers CPU per accepted pledge {untraced_cpu:.3f} -> {traced_cpu:.3f} ms; "
        + ("every run passed its checks" if ok else "A RUN FAILED ITS CHECKS")
    )
    report(
        summary,
        {
            "ok": ok,
            "pairs": len(pairs),
            "trace_sample_ratio": arguments.trace_sample_ratio,
            "ratio_change_mean": ratio["mean"],
            "ratio_change_stderr": ratio["stderr"],
            "ratio_change_median": ratio["median"],
            "ratio_change_per_pair": ratio["per_pair"],
            "rate_change_mean": rate["mean"],
            "rate_change_stderr": rate["stderr"],
            "rate_change_median": rate["median"],
            "rate_change_per_pair": rate["per_pair"],
            "pledges_per_s_untraced": [untraced["pledges_per_s"] for untraced, _ in pairs],
            "pledges_per_s_traced": [traced["pledges_per_s"] for _, traced in pairs],
            "vouchers_cpu_ms_per_pledge_untraced": untraced_cpu,
            "vouchers_cpu_ms_per_pledge_traced": traced_cpu,
            "cpu_ms_per_pledge_untraced": untraced_cpus,
            "cpu_ms_per_pledge_traced": traced_cpus,
        },
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
