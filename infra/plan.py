"""`cd4ml plan`: the desired platform written to a directory, offline.

    DIR/objects/    every object the kit declares or renders from its own charts, one file each
    DIR/releases/   every upstream Helm release: repo, chart, pinned version, values
    DIR/embedded/   objects a service's configuration carries and it creates itself (GoCD's agent pod)
    DIR/deploys/    what pipelines deploy with charts/ml-app, per environment (never applied by the kit)
    DIR/platform.json  services, wiring, images, summed requests, tenants (infra/document.py)

Generated secrets appear only as the names of the keys that `up` will fill.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from infra.document import PlatformDocument
from infra.platform.model import HelmRelease, Platform
from infra.render import embedded_objects, kit_objects, object_file_name, preview_objects
from infra.validate import validate_objects


class _ReadableDumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # libyaml when present: faster
    """Multi-line strings (Fluentd configs, role files) as literal blocks, so a plan reads like config."""


def _str_representer(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_ReadableDumper.add_representer(str, _str_representer)


def dump_yaml(document: dict[str, Any]) -> str:
    return yaml.dump(document, Dumper=_ReadableDumper, sort_keys=False, width=120)


def release_document(release: HelmRelease) -> dict[str, Any]:
    return {
        "name": release.name,
        "namespace": release.namespace,
        "repo": release.repo,
        "chart": release.chart,
        "version": release.version,
        "values": release.values,
    }


@dataclass(frozen=True)
class PlanResult:
    out_dir: Path
    objects: int
    releases: int


def write_plan(platform: Platform, out_dir: Path, validate: bool = True) -> PlanResult:
    files = {"objects": kit_objects(platform), "embedded": embedded_objects(platform),
             "deploys": preview_objects(platform)}
    if validate:
        validate_objects([manifest for manifests in files.values() for manifest in manifests])
    releases_dir = out_dir / "releases"
    for directory in [out_dir / name for name in files] + [releases_dir]:
        if directory.exists():
            shutil.rmtree(directory)  # a stale file from an earlier plan would look desired
        directory.mkdir(parents=True)
    for name, manifests in files.items():
        for manifest in manifests:
            (out_dir / name / object_file_name(manifest)).write_text(dump_yaml(manifest))
    objects = files["objects"]
    releases = [r for part in platform.parts for r in part.releases]
    for release in releases:
        (releases_dir / f"{release.namespace}__{release.name}.yaml").write_text(dump_yaml(release_document(release)))
    (out_dir / "platform.json").write_text(json.dumps(PlatformDocument.of(platform).to_json(), indent=2) + "\n")
    return PlanResult(out_dir=out_dir, objects=len(objects), releases=len(releases))
