"""Prints how long `cd4ml plan` takes (build the model, render the kit's charts, validate, write),
for the stack as it is and in workshop mode with 1, 10 and 100 participants — with the growth per
participant, which must stay no worse than linear.

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


def measure(stack: str, rounds: int, overrides: dict[str, str] | None = None) -> dict[str, list[float]]:
    phases: dict[str, list[float]] = {"config+model": [], "plan (render, validate, write)": [], "total": []}
    for _ in range(rounds):
        with tempfile.TemporaryDirectory() as out:
            start = time.perf_counter()
            platform = build_platform(load_stack(STACKS, stack, overrides), stack)
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
    print(f"workshop mode, stack '{stack}' (seconds, median of {max(1, rounds // 2)})")
    totals = {}
    for participants in (1, 10, 100):
        times = measure(stack, max(1, rounds // 2), {"participants": str(participants)})["total"]
        totals[participants] = statistics.median(times)
        print(f"  {participants:>3} participants  total {totals[participants]:.3f}")
    per_10 = (totals[10] - totals[1]) / 9
    per_100 = (totals[100] - totals[10]) / 90
    print(f"  per added participant: {per_10:.4f} s (1->10), {per_100:.4f} s (10->100); "
          f"{'linear or better' if per_100 <= per_10 * 1.5 else 'WORSE than linear'}")


if __name__ == "__main__":
    main()
