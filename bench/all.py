"""Every benchmark in bench/, one after the other, then one line per benchmark with its figures.

Each benchmark prints its figures as one JSON object on the last line of its standard output (`_stack.report`);
this runs them in turn (their progress shows on stderr as it happens), keeps each one's figures in
`.local/bench/<name>.json`, and ends with one line per benchmark, `<command>: <figures>`, so a whole run can be read
and compared at a glance. A benchmark that fails (exit status not 0) does not stop the others; the run then exits 1.

    .venv/bin/python bench/all.py                       # what `make bench` runs
    .venv/bin/python bench/all.py voucher_day wallet_issuance
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

from _stack import REPO, log

BENCHMARKS = [
    ["relay_throughput"],
    ["relay_throughput", "--aggregates", "1"],
    ["consumer_throughput"],
    ["consumer_throughput", "--ignored"],
    ["voucher_day"],
    ["voucher_day", "--workers", "2"],
    ["wallet_issuance"],
    ["notification_latency"],
    ["http_overhead"],
    ["tracing_spans"],
    ["portal_public"],
    ["equal_shares"],
    ["help_matching"],
]
RESULTS = REPO / ".local" / "bench"


def run(command: list[str]) -> tuple[int, str | None, float]:
    """The exit status, the last line of standard output (the figures, when it is JSON) and the seconds it took."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, str(REPO / "bench" / f"{command[0]}.py"), *command[1:]],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    last = None
    for line in process.stdout:
        sys.stdout.write(line)
        sys.stdout.flush()
        last = line.strip() or last
    return process.wait(), last, time.perf_counter() - started


def main(names: list[str]) -> int:
    chosen = [command for command in BENCHMARKS if not names or command[0] in names]
    RESULTS.mkdir(parents=True, exist_ok=True)
    lines, failed = [], 0
    for command in chosen:
        label = " ".join(command)
        log(f"== {label}")
        code, last, seconds = run(command)
        try:
            figures = json.loads(last or "")
        except ValueError:
            figures = None
        if code != 0 or not isinstance(figures, dict):
            failed += 1
        name = "_".join(part.lstrip("-") for part in command)
        if isinstance(figures, dict):
            (RESULTS / f"{name}.json").write_text(json.dumps(figures, sort_keys=True) + "\n")
        status = "" if code == 0 else f" (exit status {code})"
        lines.append(
            f"{label}{status} [{seconds:.0f} s]: " + (json.dumps(figures, sort_keys=True) if figures else "no figures")
        )
    print("\n".join(["", f"== figures, one line per benchmark (also in {RESULTS.relative_to(REPO)}/)", *lines]))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
