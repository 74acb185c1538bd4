"""The users' CI on a real cluster (.github/workflows/e2e-kind.yml) and the model's path it runs
(tests/e2e/model_path.py): never executed here (no Docker), so held to what can be read — what it
triggers on, what it runs, that actionlint finds nothing, and that the pipeline pod it starts is the
agents' own."""

from __future__ import annotations

import shutil
import subprocess
import sys
from fnmatch import fnmatch

import pytest
import yaml

from infra.config import load_config
from infra.platform.build import build_platform
from infra.platform.kit_images import REPO_ROOT
from infra.validate import validate_objects

WORKFLOW = REPO_ROOT / ".github" / "workflows" / "e2e-kind.yml"
sys.path.insert(0, str(REPO_ROOT / "tests" / "e2e"))


def workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def test_a_change_anywhere_the_platform_comes_from_runs_it():
    """Every tracked top-level part the platform or its proof is made of triggers the run."""
    paths = workflow()[True]["pull_request"]["paths"]  # YAML 1.1 reads the key `on` as True
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO_ROOT, capture_output=True, text=True).stdout.split()
    ignored = {"README.md", ".gitignore", "__main__.py", ".ci"}
    tops = {name.split("/")[0] for name in tracked} - ignored - {".github"}
    for top in sorted(tops):
        assert any(fnmatch(top, p) or p.startswith(f"{top}/") for p in paths), top
    assert ".github/workflows/e2e-kind.yml" in paths


def test_the_kit_creates_its_cluster_and_the_model_path_runs():
    """No kind action: `make up` installs the pinned kind and creates the cluster as a new laptop
    would; then the model's path, recreate, smoke, and a report of the disk used."""
    steps = workflow()["jobs"]["e2e"]["steps"]
    assert not [s for s in steps if "kind-action" in s.get("uses", "")]
    runs = [s.get("run", "") for s in steps]
    order = ["docker image prune", "make up", "cd4ml smoke", "tests/e2e/model_path.py", "cd4ml recreate",
             "docker system df", "cd4ml down --cluster"]
    positions = [next(i for i, run in enumerate(runs) if command in run) for command in order]
    assert positions == sorted(positions)
    assert (REPO_ROOT / "tests" / "e2e" / "model_path.py").is_file()


@pytest.mark.skipif(shutil.which("actionlint") is None,
                    reason="actionlint not installed (go install github.com/rhysd/actionlint/cmd/actionlint@v1.7.12)")
def test_actionlint_finds_nothing():
    result = subprocess.run(["actionlint", str(WORKFLOW)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_pipeline_pod_is_the_agents_own():
    """The pod the model path starts is the elastic-agent profile's pod (image, ServiceAccount, labels
    the network policies select, environment, limits) with the example mounted and the stages as its
    command: what GoCD would run, minus GoCD."""
    import model_path

    platform = build_platform(load_config({}), "local")
    profile_pod = platform.services["gocd"].embedded[0]
    pod, config_map = model_path.pipeline_pod(platform, "abc123")
    assert validate_objects([pod, config_map]) > 0
    container, profile = pod["spec"]["containers"][0], profile_pod["spec"]["containers"][0]
    for key in ("image", "resources", "securityContext"):
        assert container[key] == profile[key]
    assert container["env"][:-1] == profile["env"]
    assert pod["spec"]["serviceAccountName"] == profile_pod["spec"]["serviceAccountName"]
    assert pod["metadata"]["labels"] == profile_pod["metadata"]["labels"]
    stages = container["command"][-1]
    for stage in ("pytest tests/unit", "model.train", "model.gate", "deploy.sh staging"):
        assert stage in stages
    assert len(config_map["binaryData"]["repo.tar.gz"]) < 900_000  # a ConfigMap holds at most 1 MiB
