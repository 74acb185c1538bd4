"""Prints the smoke suite's wall time against the stand-ins (and a real MLflow server).

A benchmark, not a test: it reports figures and asserts nothing about time.
Run: .venv/bin/python tests/benchmarks/smoke_time.py [rounds]
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from smoke_fixtures import MLflowServer, StandInPlatform  # noqa: E402

from infra.smoke.runner import run_checks, select  # noqa: E402


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    with tempfile.TemporaryDirectory() as workdir:
        mlflow = MLflowServer(Path(workdir))
        try:
            times, slowest = [], {}
            for _ in range(rounds):
                platform = StandInPlatform(mlflow.url)
                try:
                    started = time.perf_counter()
                    results = run_checks(platform.context(timeout=30), select())
                    times.append(time.perf_counter() - started)
                finally:
                    platform.stop()
                for result in results:
                    slowest[result.name] = max(slowest.get(result.name, 0.0), result.seconds)
        finally:
            mlflow.stop()
    print(f"cd4ml smoke against stand-ins + real MLflow, {len(results)} checks, {rounds} rounds (seconds)")
    print(f"  wall time  median {statistics.median(times):.3f}  min {min(times):.3f}  max {max(times):.3f}")
    for name, seconds in sorted(slowest.items(), key=lambda item: -item[1])[:5]:
        print(f"  slowest check {name:<36} {seconds:.3f}")


if __name__ == "__main__":
    main()
