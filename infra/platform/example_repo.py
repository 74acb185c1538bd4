"""The example model repository (`examples/model-repo`) made a tenant's own: the files a ready copy
holds, and its pipeline file with the tenant's names (named `<participant>-diabetes-model`, in their
group and GoCD environment, every job on their elastic profile). The git server seeds these
(infra/platform/gitea.py) and `cd4ml repos` writes them out (infra/model_repos.py).

The example's pipeline file is rewritten line by line (its comments are the lesson), then parsed back
and checked, so a change to the example that these rewrites no longer fit fails loudly, here. Its
material is `type: configrepo` (the repository GoCD reads it from), so no URL is rewritten."""

from __future__ import annotations

import fnmatch
from pathlib import Path

import yaml

from infra.paths import REPO_ROOT
from infra.platform.tenants import Tenant

EXAMPLE = REPO_ROOT / "examples" / "model-repo"
PIPELINE_FILE = "ci.gocd.yaml"
EXAMPLE_PIPELINE, EXAMPLE_GROUP, EXAMPLE_PROFILE = "diabetes-model", "cd4ml-example", "cd4ml-ml"
REPO_NAME = EXAMPLE_PIPELINE
"""What a tenant's ready repository is called, under its owner."""
NOT_COPIED = ("__pycache__", ".pytest_cache", "out", "mlruns", "*.pyc", ".git")


class ExampleChanged(RuntimeError):
    """The example's pipeline file no longer has the shape these rewrites expect."""


def example_files(root: Path = EXAMPLE) -> dict[str, str]:
    """Every file of the example a ready copy holds, as repository path -> text (the pipeline file too)."""
    def kept(path: Path) -> bool:
        parts = path.relative_to(root).parts
        return not any(fnmatch.fnmatch(part, pattern) for part in parts for pattern in NOT_COPIED)

    return {path.relative_to(root).as_posix(): path.read_text(encoding="utf-8")
            for path in sorted(root.rglob("*")) if path.is_file() and kept(path)}


def pipeline_name(tenant: Tenant) -> str:
    return f"{tenant.pipeline_prefix}{EXAMPLE_PIPELINE}"


def tenant_pipeline(example: str, tenant: Tenant) -> str:
    """The example's ci.gocd.yaml with the tenant's names; a single team's is the example's own."""
    if not tenant.gocd_environment:
        return example
    pipeline = pipeline_name(tenant)
    lines = []
    for line in example.splitlines():
        stripped = line.strip()
        if line == f"  {EXAMPLE_PIPELINE}:":
            line = f"  {pipeline}:"
        elif stripped == f"group: {EXAMPLE_GROUP}":
            line = line.replace(EXAMPLE_GROUP, tenant.pipeline_group)
        elif stripped == f"elastic_profile_id: {EXAMPLE_PROFILE}":
            line = line.replace(EXAMPLE_PROFILE, tenant.elastic_profile)
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
    _check(text, tenant, pipeline)
    return text


def _check(text: str, tenant: Tenant, pipeline: str) -> None:
    config = yaml.safe_load(text)
    found = config.get("pipelines") or {}
    body = found.get(pipeline) or {}
    profiles = {job.get("elastic_profile_id") for stage in body.get("stages") or [] for named in stage.values()
                for job in (named.get("jobs") or {}).values()}
    materials = [m.get("type") for m in (body.get("materials") or {}).values()]
    problems = [what for what, wrong in (
        (f"one pipeline {pipeline!r}, found {list(found)}", list(found) != [pipeline]),
        (f"group {tenant.pipeline_group!r}, found {body.get('group')!r}", body.get("group") != tenant.pipeline_group),
        (f"every job on {tenant.elastic_profile!r}, found {profiles}", profiles != {tenant.elastic_profile}),
        (f"environment {tenant.gocd_environment!r} listing it", config.get("environments") != {
            tenant.gocd_environment: {"pipelines": [pipeline]}}),
        (f"one material, the config repository itself (type: configrepo), found {materials}",
         materials != ["configrepo"]),
    ) if wrong]
    if problems:
        raise ExampleChanged(f"{EXAMPLE / PIPELINE_FILE} no longer fits the participants' rewrite; expected "
                             + "; ".join(problems))
