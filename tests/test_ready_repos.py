"""`cd4ml repos`: each participant's ready copy of the example model repository, its pipeline already
theirs, committed on main; the copy's own pipeline tests pass in it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import yaml
from typer.testing import CliRunner

from infra.cli.main import app
from infra.paths import REPO_ROOT
from infra.platform.example_repo import EXAMPLE, PIPELINE_FILE, ExampleChanged, tenant_pipeline
from infra.platform.tenants import Tenant

runner = CliRunner()


@pytest.fixture(scope="module")
def repos(tmp_path_factory):
    out = tmp_path_factory.mktemp("repos")
    result = runner.invoke(app, ["repos", "--stack", "workshop", "--set", "participantNames=ada,grace",
                                 "--set", "participants=2", "--set",
                                 "modelRepos=https://github.com/your-org/cd4ml-workshop-{participant}.git",
                                 "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert f"ada: git -C {out / 'ada'} push https://github.com/your-org/cd4ml-workshop-ada.git main" in result.output
    return out


def test_each_participants_pipeline_is_theirs_and_reads_their_repository(repos):
    config = yaml.safe_load((repos / "grace" / PIPELINE_FILE).read_text())
    pipeline = config["pipelines"]["grace-diabetes-model"]
    assert pipeline["group"] == "grace"
    assert config["environments"] == {"grace": {"pipelines": ["grace-diabetes-model"]}}
    # The repository GoCD reads it from, whatever its URL (GoCD ConfigConverter.toConfigRepoMaterial).
    assert pipeline["materials"] == {"model_repo": {"type": "configrepo"}}
    text = (repos / "grace" / PIPELINE_FILE).read_text()
    assert "elastic_profile_id: cd4ml-ml-grace" in text and "elastic_profile_id: cd4ml-ml\n" not in text
    assert "# Rolling back" in text  # the example's lesson kept


def test_the_copy_is_committed_on_main_without_build_leftovers(repos):
    log = subprocess.run(["git", "-C", str(repos / "ada"), "log", "--format=%s", "main"], capture_output=True,
                         text=True, check=True).stdout.splitlines()
    assert log == ["The CD4ML example model, ready for ada"]
    assert not list((repos / "ada").rglob("__pycache__")) and not (repos / "ada" / ".pytest_cache").exists()


def test_the_copys_own_pipeline_tests_pass_in_it(repos):
    """The pipeline's first stage runs tests/unit: they must accept the participant's names."""
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "tests/unit/test_pipeline_config.py"], cwd=repos / "ada", capture_output=True, text=True,
                          # what the agent image puts on PYTHONPATH (images/gocd-agent-ml/Dockerfile)
                          env={**os.environ, "CD4ML_EVENTS_PY": str(REPO_ROOT / "infra" / "events.py")})
    assert done.returncode == 0, done.stdout[-2000:]


def test_an_example_these_rewrites_no_longer_fit_fails_here_saying_what(tmp_path):
    tenant = Tenant("ada", True, ())
    changed = (EXAMPLE / PIPELINE_FILE).read_text().replace("group: cd4ml-example", "group: examples")
    with pytest.raises(ExampleChanged, match="group 'ada', found 'examples'"):
        tenant_pipeline(changed, tenant)


def test_a_single_team_stack_is_told_it_has_no_participants(tmp_path):
    result = runner.invoke(app, ["repos", "--out", str(tmp_path)])
    assert result.exit_code == 1 and "ready repositories are for workshop participants" in result.output
