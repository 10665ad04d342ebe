"""Tracing's cost to the voucher day: alternating runs of `bench/voucher_day.py` without and with tracing, in pairs.

One run against one is noise on a shared machine (the same run differs by 20 % from one minute to the next), so this
runs `--pairs` pairs one after the other, the order inside a pair alternating (off then on, on then off, so neither
side always follows the other), and sets each traced run against the untraced run of its pair:

- the change in the ratio to pgbench `-N` (the yardstick each run measures for itself) and in accepted pledges a
  second, per pair, with their mean, standard error and median;
- the vouchers service's CPU per accepted pledge (its cores over its rate, from /proc), the mean of each side, and
  every party's (the services, PostgreSQL, Kafka, the benchmark and its generator, others: the trace backend among
  them): with the machine's cores full on both sides, the rate follows what a pledge costs all of them together.

With `--open-rate R`, each run also sends pledges at a fixed R a second for `--open-seconds` after its closed loop
(the open loop, the same arrivals on both sides): what a pledge costs in CPU with the load held equal, so neither the
rate nor the group commit's batches differ between the two sides, and the latency from the schedule at that rate
(p50, p99). Per pair, the traced run's CPU per accepted pledge over the untraced run's (the vouchers service's and
every party's, the generator's own stated apart) and its p50 and p99 against the untraced run's. Every party's
includes what the consumers still owed the closed loop when the open loop began, which differs between the sides;
the vouchers service answers each request before the next phase, so its figure holds.

The traced runs export all three services' spans to `--otlp-endpoint` (Jaeger from `make observability-up`) at
`--trace-sample-ratio`. Needs the local stack (`make stack-up topics`); each run takes about a minute (plus the open
loop).

    .venv/bin/python bench/tracing_cost.py --pairs 10
    .venv/bin/python bench/tracing_cost.py --pairs 6 --trace-sample-ratio 0.1
    .venv/bin/python bench/tracing_cost.py --pairs 8 --open-rate 300 --open-seconds 15

Progress goes to stderr, each run's own figures to `--keep DIR` if given; the last line on stdout is the figures as
one JSON object (`ratio_change_mean`, `rate_change_mean`, ... as fractions; `ok` false when a run failed its checks).

How much a series says moves from one hour to the next by more than its standard error, so one series does not
settle whether tracing stays under a bound. `--pool DIR ...` runs nothing: it reads series kept with `--keep` and
sets them side by side, each series' changes and, over all of them, the series' mean with its standard error (the
series as the unit, so the hour's drift is in it), the pairs' pooled mean, and how many series lie beyond `--bound`:

    .venv/bin/python bench/tracing_cost.py --pool /tmp/series-1 /tmp/series-2 /tmp/series-3
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from _stack import REPO, log, report


def run(traced: bool, arguments: argparse.Namespace, keep: Path | None, name: str) -> dict[str, object]:
    """One voucher day: the yardstick and the closed loop, and the open loop when `--open-rate` is given; its figures
    (the last line of its stdout)."""
    command = [sys.executable, str(REPO / "bench" / "voucher_day.py"), "--pgbench-seconds", "5"]
    if arguments.open_rate:
        command += ["--open-seconds", str(arguments.open_seconds), "--rate", str(arguments.open_rate)]
    else:
        command += ["--open-seconds", "0"]
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
        + (
            f"; open loop at {arguments.open_rate:g}/s: p50 {figures['p50_ms']:.0f} ms, "
            f"p99 {figures['p99_ms']:.0f} ms, vouchers {cpu_per_pledge_ms(figures, 'service', 'open'):.3f} ms a pledge"
            if arguments.open_rate
            else ""
        )
    )
    return figures


def changes(pairs: list[tuple[dict, dict]], key: str | Callable[[dict], float]) -> dict[str, object]:
    """Per pair, traced over untraced minus one (of the figure `key` names, or computes); with their mean, standard
    error and median."""
    value = key if callable(key) else lambda figures: figures[key]
    values = [value(traced) / value(untraced) - 1 for untraced, traced in pairs]
    return {
        "per_pair": values,
        "mean": statistics.mean(values),
        "stderr": standard_error(values),
        "median": statistics.median(values),
    }


def standard_error(values: list[float]) -> float | None:
    """The standard error of the mean of `values` (None for fewer than two)."""
    return statistics.stdev(values) / len(values) ** 0.5 if len(values) > 1 else None


def passed(pairs: list[tuple[dict, dict]]) -> bool:
    """Whether every run of `pairs` passed its checks."""
    return all(untraced["ok"] and traced["ok"] for untraced, traced in pairs)


def cpu_per_pledge_ms(figures: dict, party: str, loop: str = "closed") -> float:
    """A party's CPU over a loop per accepted pledge (`all`: every party's, the trace backend in `others`)."""
    phase = figures[loop]
    cores = phase["cpu_cores"]
    used = sum(cores.values()) if party == "all" else cores[party]
    return used / phase["accepted_per_s"] * 1000


def cpu_by_party(runs: list[dict], loop: str = "closed") -> dict[str, float]:
    """Each party's CPU per accepted pledge, in ms, the mean over `runs`."""
    parties = [*runs[0][loop]["cpu_cores"], "all"]
    return {party: statistics.mean(cpu_per_pledge_ms(figures, party, loop) for figures in runs) for party in parties}


def fixed_rate(pairs: list[tuple[dict, dict]]) -> dict[str, object]:
    """The open loop's figures: CPU per accepted pledge (each party's means, the vouchers service's and every party's
    change per pair) and the latency from the schedule, untraced and traced."""
    untraced, traced = [pair[0] for pair in pairs], [pair[1] for pair in pairs]
    return {
        "cpu_ms_per_pledge_untraced": cpu_by_party(untraced, "open"),
        "cpu_ms_per_pledge_traced": cpu_by_party(traced, "open"),
        "vouchers_cpu_change": changes(pairs, lambda figures: cpu_per_pledge_ms(figures, "service", "open")),
        "all_cpu_change": changes(pairs, lambda figures: cpu_per_pledge_ms(figures, "all", "open")),
        "generator_cores": [figures["open"]["cpu_cores"]["generator"] for pair in pairs for figures in pair],
        "p50_ms_untraced": [figures["p50_ms"] for figures in untraced],
        "p50_ms_traced": [figures["p50_ms"] for figures in traced],
        "p99_ms_untraced": [figures["p99_ms"] for figures in untraced],
        "p99_ms_traced": [figures["p99_ms"] for figures in traced],
        "late_untraced": [figures["late"] for figures in untraced],
        "late_traced": [figures["late"] for figures in traced],
    }


def kept_pairs(directory: Path) -> list[tuple[dict, dict]]:
    """The (untraced, traced) figures of a series kept with `--keep`, in the order of its pairs."""
    names = (path.name for path in directory.glob("pair-*-off.out"))
    numbers = sorted(int(match.group(1)) for name in names if (match := re.fullmatch(r"pair-(\d+)-off\.out", name)))
    if not numbers:
        raise SystemExit(f"{directory}: no kept pairs (pair-N-off.out, pair-N-on.out)")

    def figures(number: int, side: str) -> dict:
        lines = (directory / f"pair-{number}-{side}.out").read_text().strip().splitlines()
        if not lines:
            raise SystemExit(f"{directory}: pair {number} ({side}) printed no figures")
        return json.loads(lines[-1])

    return [(figures(number, "off"), figures(number, "on")) for number in numbers]


def pool(directories: list[Path], bound: float) -> int:
    """Series kept with `--keep`, side by side and together (see the module's docstring)."""
    series = []
    for directory in directories:
        pairs = kept_pairs(directory)
        rate, ratio = changes(pairs, "pledges_per_s"), changes(pairs, "ratio")
        tps = [figures["pgbench_tps"] for pair in pairs for figures in pair]
        ok = passed(pairs)
        series.append(
            {"series": str(directory), "pairs": len(pairs), "ok": ok, "rate_change": rate, "ratio_change": ratio}
        )
        log(
            f"{directory}: {len(pairs)} pairs, pledges/s {rate['mean']:+.1%} ± {rate['stderr'] or 0:.1%}, ratio to "
            f"pgbench {ratio['mean']:+.1%} ± {ratio['stderr'] or 0:.1%}; pgbench {min(tps):.0f}-{max(tps):.0f} tps"
            + ("" if ok else "; A RUN FAILED ITS CHECKS")
        )

    def together(key: str) -> dict[str, object]:
        means = [entry[f"{key}_change"]["mean"] for entry in series]
        per_pair = [change for entry in series for change in entry[f"{key}_change"]["per_pair"]]
        return {
            "series_mean": statistics.mean(means),
            "series_stderr": standard_error(means),
            "series_min": min(means),
            "series_max": max(means),
            "series_beyond_bound": sum(mean < -bound for mean in means),
            "pairs_mean": statistics.mean(per_pair),
            "pairs_stderr": standard_error(per_pair),
        }

    rate, ratio = together("rate"), together("ratio")
    ok = all(entry["ok"] for entry in series)
    report(
        f"{len(series)} series, {sum(entry['pairs'] for entry in series)} pairs: pledges/s "
        f"{rate['series_mean']:+.1%} ± {rate['series_stderr'] or 0:.1%} (series {rate['series_min']:+.1%} to "
        f"{rate['series_max']:+.1%}, {rate['series_beyond_bound']} beyond -{bound:.0%}), ratio to pgbench "
        f"{ratio['series_mean']:+.1%} ± {ratio['series_stderr'] or 0:.1%} ({ratio['series_beyond_bound']} beyond); "
        + ("every run passed its checks" if ok else "A RUN FAILED ITS CHECKS"),
        {
            "ok": ok,
            "bound": bound,
            "series": series,
            "rate_change": rate,
            "ratio_change": ratio,
        },
    )
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=10, help="pairs of runs, untraced and traced")
    parser.add_argument(
        "--otlp-endpoint", default="http://127.0.0.1:16687", help="OTLP/HTTP endpoint of the traced runs"
    )
    parser.add_argument("--trace-sample-ratio", type=float, default=1.0)
    parser.add_argument(
        "--open-rate", type=float, default=0, help="also an open loop at this many pledges a second (0: none)"
    )
    parser.add_argument("--open-seconds", type=float, default=15.0, help="how long the open loop's pledges arrive")
    parser.add_argument("--keep", metavar="DIR", help="keep each run's stdout and stderr in DIR")
    parser.add_argument(
        "--pool", metavar="DIR", nargs="+", type=Path, help="run nothing: set series kept with --keep side by side"
    )
    parser.add_argument("--bound", type=float, default=0.10, help="with --pool: count the series that lose more")
    arguments = parser.parse_args()
    if arguments.pool:
        return pool(arguments.pool, arguments.bound)
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
    ok = passed(pairs)
    summary = (
        f"tracing at {arguments.trace_sample_ratio:.0%} over {len(pairs)} pairs: ratio to pgbench "
        f"{ratio['mean']:+.1%} (median {ratio['median']:+.1%}), pledges/s {rate['mean']:+.1%} "
        f"(median {rate['median']:+.1%})"
        + (f", standard error {rate['stderr']:.1%}" if rate["stderr"] is not None else "")
        + f"; vouchers CPU per accepted pledge {untraced_cpu:.3f} -> {traced_cpu:.3f} ms; "
        + ("every run passed its checks" if ok else "A RUN FAILED ITS CHECKS")
    )
    open_loop = fixed_rate(pairs) if arguments.open_rate else None
    if open_loop is not None:
        vouchers, every = open_loop["vouchers_cpu_change"], open_loop["all_cpu_change"]
        summary += (
            f"; at {arguments.open_rate:g} pledges/s: CPU per accepted pledge, vouchers {vouchers['mean']:+.1%} "
            f"(± {vouchers['stderr'] or 0:.1%}), every party {every['mean']:+.1%} (± {every['stderr'] or 0:.1%}); "
            f"p50 {statistics.median(open_loop['p50_ms_untraced']):.0f} -> "
            f"{statistics.median(open_loop['p50_ms_traced']):.0f} ms, "
            f"p99 {statistics.median(open_loop['p99_ms_untraced']):.0f} -> "
            f"{statistics.median(open_loop['p99_ms_traced']):.0f} ms (medians of the runs); "
            f"the generator used at most {max(open_loop['generator_cores']):.2f} cores"
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
            "open_rate": arguments.open_rate or None,
            "open_loop": open_loop,
        },
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
