"""Pulls every upstream chart the kit pins, at its pinned version, for tests/test_upstream_charts.py.

Needs the chart repositories (internet). Pins are read from the platform model, never repeated here.
Run: make upstream-charts   (writes .upstream-charts/<chart>/)
"""

from __future__ import annotations

import sys
from pathlib import Path

from infra.config import load_config, load_stack, project_dir
from infra.platform.build import build_platform


def main(target: Path) -> None:
    from infra.cli.charts import pinned_charts, pull

    # The laptop stack pins the services' charts; the GKE stack adds the ingress controller and cert-manager.
    platforms = [build_platform(load_config({}), "local"),
                 build_platform(load_stack(project_dir() / "stacks", "gke"), "gke")]
    releases = {r.chart: r for platform in platforms for r in pinned_charts(platform)}
    for line in pull(sorted(releases.values(), key=lambda r: r.chart), target):
        print(f"  {line}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else ".upstream-charts"))
