"""Pulls every upstream chart the kit pins, at its pinned version, for tests/test_upstream_charts.py.

Needs the chart repositories (internet). Pins are read from the platform model, never repeated here.
Run: make upstream-charts   (writes .upstream-charts/<chart>/)
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import helm_python

from infra.config import load_config, load_stack, project_dir
from infra.platform.build import build_platform


def main(target: Path) -> None:
    # The laptop stack pins the services' charts; the GKE stack adds the ingress controller and cert-manager.
    platforms = [build_platform(load_config({}), "local"),
                 build_platform(load_stack(project_dir() / "stacks", "gke"), "gke")]
    pins = {(r.repo, r.chart, r.version) for platform in platforms for part in platform.parts for r in part.releases}
    target.mkdir(parents=True, exist_ok=True)
    for repo, chart, version in sorted(pins):
        destination = target / chart
        if destination.exists():
            shutil.rmtree(destination)
        with tempfile.TemporaryDirectory() as scratch:
            helm_python.pull(chart, repo_url=repo, version=version, untar=True, untar_dir=scratch)
            shutil.move(str(Path(scratch) / chart), destination)
        print(f"  {chart} {version} from {repo} -> {destination}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else ".upstream-charts"))
