"""Checkov (PyPI, run as a CLI from its own venv) over everything `cd4ml plan` writes: the kit's
objects, the embedded agent pods and the pipelines' model-service deploys.

Every finding must be on the reasoned allow-list (tests/checkov-allowlist.yaml), and every entry
of that list must still match a finding, so it cannot grow stale. Upstream charts' objects are not
in a plan (they are Helm releases); tests/test_upstream_charts.py renders those when given them.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from stack_settings import workshop
from tools import tool

from infra.config import load_config
from infra.plan import write_plan
from infra.platform.build import build_platform

ALLOWLIST = yaml.safe_load((Path(__file__).parent / "checkov-allowlist.yaml").read_text())
STACKS = {"local": {}, "workshop": workshop(participants=3),
          "node-port": {"cd4ml:exposure": "node-port"},
          "ingress": {"cd4ml:profile": "cluster", "cd4ml:participants": 2, "cd4ml:exposure": "ingress",
                      "cd4ml:domain": "w.example.com", "cd4ml:tlsIssuer": "self-signed"}}


def checkov_reports(directory: Path) -> list[dict]:
    """Checkov's report over a directory (offline: --skip-download leaves out only the guideline links
    it would fetch from Prisma Cloud); passed checks included, so what it read can be seen."""
    result = subprocess.run([str(tool("checkov")), "-d", str(directory), "--framework", "kubernetes",
                             "--compact", "-o", "json", "--skip-download"], capture_output=True, text=True,
                            timeout=600)
    assert result.returncode in (0, 1), result.stderr[-2000:]  # 1: findings
    reports = json.loads(result.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    assert any(r.get("summary", {}).get("resource_count", 0) > 0 for r in reports), "Checkov read nothing"
    assert all(r.get("summary", {}).get("parsing_errors", 0) == 0 for r in reports)
    return reports


def allowed(check: str, resource: str) -> dict | None:
    return next((e for e in ALLOWLIST if e["check"] == check and re.match(e["resource"], resource)), None)


KNOWN_BAD = "known-bad"
"""A folder beside the stacks' plans holding what Checkov must catch (test_checkov_does_catch_what_the_kit_avoids)."""


@pytest.fixture(scope="module")
def checkov_run(tmp_path_factory) -> dict[str, list[tuple[str, str, str]]]:
    """Every stack's plan in a folder of its own, and the known-bad Deployment in another, all read by one
    Checkov run (each run spends seconds starting): findings by folder; every folder must have been read."""
    root = tmp_path_factory.mktemp("plans")
    for stack, settings in STACKS.items():
        write_plan(build_platform(load_config(settings), stack), root / stack)
    (root / KNOWN_BAD).mkdir()
    (root / KNOWN_BAD / "bad.yaml").write_text(yaml.safe_dump({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "bad", "namespace": "x"},
        "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {
            "metadata": {"labels": {"a": "b"}},
            "spec": {"containers": [{"name": "c", "image": "nginx:latest"}]}}}}))
    reports = checkov_reports(root)
    folder_of = lambda path: Path(path).parts[1]  # noqa: E731 - "/<folder>/objects/..."
    read = {folder_of(c["file_path"]) for r in reports for kind in ("passed_checks", "failed_checks")
            for c in r["results"][kind]}
    assert read == {*STACKS, KNOWN_BAD}, f"Checkov read {sorted(read)}"
    found: dict[str, list[tuple[str, str, str]]] = {folder: [] for folder in read}
    for r in reports:
        for f in r["results"]["failed_checks"]:
            found[folder_of(f["file_path"])].append((f["check_id"], f["resource"], f["file_path"]))
    return found


@pytest.fixture(scope="module")
def findings(checkov_run) -> dict[str, list[tuple[str, str, str]]]:
    return {stack: checkov_run[stack] for stack in STACKS}


def test_checkov_over_the_plan_finds_nothing_beyond_the_allowlist(findings):
    unexplained = [f for stack in findings.values() for f in stack if not allowed(f[0], f[1])]
    assert unexplained == [], "\n".join(f"{c} {r} ({p})" for c, r, p in unexplained)


def test_every_allowlist_entry_is_needed_and_reasoned(findings):
    used = {id(allowed(c, r)) for stack in findings.values() for c, r, _ in stack}
    for entry in ALLOWLIST:
        assert len(entry["reason"].split()) >= 12, entry["check"]
        assert id(entry) in used, f"{entry['check']} {entry['resource']} matches no finding: remove it"


def test_checkov_does_catch_what_the_kit_avoids(checkov_run):
    """The check runs for real: a container without limits, as root, with a writable root
    filesystem is reported (so an empty result above means something) — by the same run."""
    checks = {c for c, _, _ in checkov_run[KNOWN_BAD]}
    assert {"CKV_K8S_11", "CKV_K8S_13", "CKV_K8S_22", "CKV_K8S_23", "CKV_K8S_14"} <= checks
    assert not all(allowed(c, "Deployment.x.bad") for c in checks)
