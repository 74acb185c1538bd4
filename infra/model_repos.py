"""Each participant's ready model repository: `examples/model-repo` with its pipeline already theirs
(named `<participant>-diabetes-model`, in their group and GoCD environment, every job on their elastic
profile, its material the URL their config repository reads), committed on `main`, so a facilitator
pushes it where GoCD reads it and the participant's first push is a change to the model, not to YAML.

The example's pipeline file is rewritten line by line (its comments are the lesson), then parsed back
and checked, so a change to the example that these rewrites no longer fit fails loudly, here."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from infra.document import TenantEntry
from infra.paths import REPO_ROOT

EXAMPLE = REPO_ROOT / "examples" / "model-repo"
PIPELINE_FILE = "ci.gocd.yaml"
EXAMPLE_PIPELINE, EXAMPLE_GROUP, EXAMPLE_PROFILE = "diabetes-model", "cd4ml-example", "cd4ml-ml"
EXAMPLE_URL = "https://github.com/your-org/your-model-repo.git"
_NOT_COPIED = shutil.ignore_patterns("__pycache__", ".pytest_cache", "out", "mlruns", "*.pyc", ".git")


class ExampleChanged(RuntimeError):
    """The example's pipeline file no longer has the shape these rewrites expect."""


@dataclass(frozen=True)
class ReadyRepo:
    participant: str
    path: Path
    url: str | None
    """Where its config repository reads it (the stack's modelRepos entry with {participant}), if any."""
    committed: bool


def participant_pipeline(example: str, tenant: TenantEntry, url: str | None) -> str:
    """The example's ci.gocd.yaml with the participant's names (and `url` as its material, when known)."""
    if not tenant.gocd_environment:
        raise ValueError(f"{tenant.name} is not a workshop participant (no GoCD environment)")
    pipeline = f"{tenant.pipeline_prefix}{EXAMPLE_PIPELINE}"
    lines = []
    for line in example.splitlines():
        stripped = line.strip()
        if line == f"  {EXAMPLE_PIPELINE}:":
            line = f"  {pipeline}:"
        elif stripped == f"group: {EXAMPLE_GROUP}":
            line = line.replace(EXAMPLE_GROUP, tenant.gocd_pipeline_group)
        elif stripped == f"elastic_profile_id: {EXAMPLE_PROFILE}":
            line = line.replace(EXAMPLE_PROFILE, tenant.gocd_elastic_profile)
        elif stripped == f"git: {EXAMPLE_URL}" and url:
            line = line.replace(EXAMPLE_URL, url)
        elif stripped.startswith("# REPLACE with this repository's git URL") and url:
            continue
        elif stripped == "# environments:":
            line = "environments:"
        elif stripped.startswith("#   p01:"):
            line = f"  {tenant.gocd_environment}:"
        elif stripped == "#     pipelines:":
            line = "    pipelines:"
        elif stripped == "#       - p01-diabetes-model":
            line = f"      - {pipeline}"
        lines.append(line.replace(f"/go/api/stages/{EXAMPLE_PIPELINE}/", f"/go/api/stages/{pipeline}/"))
    text = "\n".join(lines) + "\n"
    _check(text, tenant, pipeline, url)
    return text


def _check(text: str, tenant: TenantEntry, pipeline: str, url: str | None) -> None:
    config = yaml.safe_load(text)
    found = config.get("pipelines") or {}
    body = found.get(pipeline) or {}
    profiles = {job.get("elastic_profile_id") for stage in body.get("stages") or [] for named in stage.values()
                for job in (named.get("jobs") or {}).values()}
    materials = [m.get("git") for m in (body.get("materials") or {}).values()]
    problems = [what for what, wrong in (
        (f"one pipeline {pipeline!r}, found {list(found)}", list(found) != [pipeline]),
        (f"group {tenant.gocd_pipeline_group!r}, found {body.get('group')!r}",
         body.get("group") != tenant.gocd_pipeline_group),
        (f"every job on {tenant.gocd_elastic_profile!r}, found {profiles}", profiles != {tenant.gocd_elastic_profile}),
        (f"environment {tenant.gocd_environment!r} listing it", config.get("environments") != {
            tenant.gocd_environment: {"pipelines": [pipeline]}}),
        (f"material {url!r}, found {materials}", bool(url) and materials != [url]),
    ) if wrong]
    if problems:
        raise ExampleChanged(f"{EXAMPLE / PIPELINE_FILE} no longer fits the participants' rewrite; expected "
                             + "; ".join(problems))


def write_ready_repos(tenants: Sequence[TenantEntry], urls: Mapping[str, str | None], out_dir: Path,
                      git: str | None = shutil.which("git")) -> list[ReadyRepo]:
    """One folder per participant under `out_dir`, each a git repository with one commit on `main`
    (when git is installed), ready to push."""
    example = (EXAMPLE / PIPELINE_FILE).read_text()
    made = []
    for tenant in tenants:
        url = urls.get(tenant.name)
        target = out_dir / tenant.name
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(EXAMPLE, target, ignore=_NOT_COPIED)
        (target / PIPELINE_FILE).write_text(participant_pipeline(example, tenant, url))
        made.append(ReadyRepo(tenant.name, target, url, bool(git) and _commit(git, target, tenant.name)))
    return made


def _commit(git: str, folder: Path, participant: str) -> bool:
    identity = ["-c", "user.name=cd4ml", "-c", "user.email=cd4ml@localhost", "-c", "commit.gpgsign=false"]
    for args in (["init", "-q", "-b", "main"], ["add", "-A"],
                 [*identity, "commit", "-q", "-m", f"The CD4ML example model, ready for {participant}"]):
        if subprocess.run([git, *args], cwd=folder, capture_output=True, text=True).returncode != 0:
            return False
    return True
