"""How long the CLI takes to answer, as a ratio to a bare interpreter on the same machine.

``help_vs_python`` = wall time of ``sslbench --help`` ÷ wall time of ``python -c pass`` (target
<= 5: the CLI costs at most four interpreter start-ups more than nothing). ``list_vs_python``
is the same for ``sslbench list`` with a warm catalog index (no target; guarded against the
baseline). Both sides are fresh processes, sampled in turn (``SSLBENCH_BENCH_CLI_REPEATS``
rounds, 15 by default), after one warm-up call each (bytecode caches); medians are compared.
Lower is better: ``compare.py`` flags a ratio that grew above ``baseline * (1 + tolerance)``.

Run with ``nox -s bench`` or ``pytest benchmarks/test_cli_startup.py``.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPEATS = int(os.environ.get("SSLBENCH_BENCH_CLI_REPEATS", "15"))


def sslbench_command() -> list[str]:
    """The console script beside this interpreter (what a user types), else ``python -m``."""
    script = Path(sys.executable).with_name("sslbench")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "sslbench"]


def wall(cmd: list[str], env: dict) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def test_cli_startup(benchmark, tmp_path):
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    root = str(Path(__file__).resolve().parents[1])  # this checkout's sslbench, not another
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))
    sides = {"python": [sys.executable, "-c", "pass"], "help": [*sslbench_command(), "--help"],
             "list": [*sslbench_command(), "list"]}
    for cmd in sides.values():  # warm-up: bytecode caches, and the catalog index for `list`
        wall(cmd, env)
    times: dict[str, list[float]] = {name: [] for name in sides}

    def one_round():
        names = list(sides)
        k = len(times["python"]) % len(names)  # rotate the order each round
        for name in names[k:] + names[:k]:
            times[name].append(wall(sides[name], env))

    benchmark.pedantic(one_round, rounds=REPEATS, iterations=1)
    med = {name: statistics.median(v) for name, v in times.items()}
    benchmark.extra_info.update(
        python_seconds=med["python"], help_seconds=med["help"], list_seconds=med["list"],
        help_vs_python=med["help"] / med["python"], list_vs_python=med["list"] / med["python"],
        command=" ".join(sides["help"]), repeats=REPEATS)
    assert med["help"] > 0 and med["python"] > 0
