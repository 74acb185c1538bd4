"""The pinned upstream charts in a local folder: `cd4ml charts --pull DIR` fetches them where there is
internet, and a stack with `chartsDir: DIR` installs every Helm release from there — with
`cd4ml images --preload`, a workshop venue needs no network at all."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import yaml

from infra.platform.model import HelmRelease, Platform


def pinned_charts(platform: Platform) -> list[HelmRelease]:
    """One release per chart the platform installs (the chart, its repository and its pinned version)."""
    unique: dict[str, HelmRelease] = {}
    for part in platform.parts:
        for release in part.releases:
            unique.setdefault(release.chart, release)
    return sorted(unique.values(), key=lambda r: r.chart)


def pull(releases: list[HelmRelease], target: Path) -> list[str]:
    """Each chart at its pinned version into `target/<chart>` (through Helm's own pull: needs the chart
    repositories). Returns one line per chart."""
    import helm_python

    target.mkdir(parents=True, exist_ok=True)
    lines = []
    for release in releases:
        destination = target / release.chart
        with tempfile.TemporaryDirectory() as scratch:
            helm_python.pull(release.chart, repo_url=release.repo, version=release.version, untar=True,
                             untar_dir=scratch)
            if destination.exists():
                shutil.rmtree(destination)
            shutil.move(str(Path(scratch) / release.chart), destination)
        lines.append(f"{release.chart} {release.version} from {release.repo} -> {destination}")
    return lines


def local_chart_problems(platform: Platform) -> list[str]:
    """What keeps a `chartsDir` stack from installing: a chart missing from the folder, or there at
    another version than the kit pins (the values are made for that version)."""
    problems = []
    for release in pinned_charts(platform):
        if not release.local_chart:
            continue
        chart_file = Path(release.local_chart) / "Chart.yaml"
        if not chart_file.is_file():
            problems.append(f"{release.chart}: no chart in {release.local_chart}")
            continue
        found = yaml.safe_load(chart_file.read_text()) or {}
        if str(found.get("version")) != release.version:
            problems.append(f"{release.chart}: {release.local_chart} holds version {found.get('version')}, "
                            f"the kit pins {release.version}")
    return problems
