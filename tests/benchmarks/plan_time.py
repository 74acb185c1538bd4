"""Prints how long `cd4ml plan` takes (build the model, render the kit's charts, validate, write).

A benchmark, not a test: it reports figures and asserts nothing about time.
Run: make bench   (or .venv/bin/python tests/benchmarks/plan_time.py [stack] [rounds])
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

from infra.config import load_stack
from infra.plan import write_plan
from infra.platform.build import build_platform

STACKS = Path(__file__).resolve().parents[2] / "stacks"


def measure(stack: str, rounds: int) -> dict[str, list[float]]:
    phases: dict[str, list[float]] = {"config+model": [], "plan (render, validate, write)": [], "total": []}
    for _ in range(rounds):
        with tempfile.TemporaryDirectory() as out:
            start = time.perf_counter()
            platform = build_platform(load_stack(STACKS, stack), stack)
            modelled = time.perf_counter()
            write_plan(platform, Path(out))
            done = time.perf_counter()
        phases["config+model"].append(modelled - start)
        phases["plan (render, validate, write)"].append(done - modelled)
        phases["total"].append(done - start)
    return phases


def main() -> None:
    stack = sys.argv[1] if len(sys.argv) > 1 else "local"
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    print(f"cd4ml plan, stack '{stack}', {rounds} rounds (seconds)")
    for phase, times in measure(stack, rounds).items():
        print(f"  {phase:<32} median {statistics.median(times):.3f}  min {min(times):.3f}  max {max(times):.3f}")


if __name__ == "__main__":
    main()
