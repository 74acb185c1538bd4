"""ci.gocd.yaml: the shape GoCD's YAML config plugin expects, and agreement with this repository."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml")  # PyYAML comes with mlflow

REPO_ROOT = Path(__file__).resolve().parents[2]
STAGES = ["test", "train", "gate", "deploy-staging", "deploy-production"]


EXAMPLE = {"pipeline": "diabetes-model", "group": "cd4ml-example", "profile": "cd4ml-ml"}


@pytest.fixture(scope="module")
def config() -> dict:
    config = yaml.safe_load((REPO_ROOT / "ci.gocd.yaml").read_text())
    assert config["format_version"] == 10
    return config


@pytest.fixture(scope="module")
def names(config) -> dict:
    """The example's names, or a workshop participant's (`cd4ml repos` writes their copy): pipeline
    <participant>-diabetes-model in group <participant>, profile cd4ml-ml-<participant>."""
    [name] = config["pipelines"]
    if name == EXAMPLE["pipeline"]:
        return EXAMPLE
    participant = name.removesuffix("-" + EXAMPLE["pipeline"])
    assert name == f"{participant}-{EXAMPLE['pipeline']}", name
    return {"pipeline": name, "group": participant, "profile": f"cd4ml-ml-{participant}",
            "environment": participant}


@pytest.fixture(scope="module")
def pipeline(config, names) -> dict:
    return config["pipelines"][names["pipeline"]]


def test_a_participants_pipeline_joins_their_environment(config, names):
    """The cluster starts a participant's agents only for pipelines in their GoCD environment."""
    if "environment" in names:
        assert config["environments"] == {names["environment"]: {"pipelines": [names["pipeline"]]}}
    else:
        assert "environments" not in config


def stages(pipeline: dict) -> dict[str, dict]:
    """Stage name -> stage; each list item is a one-key hash, as the plugin requires."""
    assert all(isinstance(s, dict) and len(s) == 1 for s in pipeline["stages"])
    return {name: body for stage in pipeline["stages"] for name, body in stage.items()}


def jobs(pipeline: dict):
    for stage_name, stage in stages(pipeline).items():
        for job_name, job in stage["jobs"].items():
            yield stage_name, job_name, job


def tasks(pipeline: dict, kind: str):
    for stage_name, _, job in jobs(pipeline):
        for task in job["tasks"]:
            assert len(task) == 1, f"a task is a one-key hash: {task}"
            if kind in task:
                yield stage_name, task[kind]


def test_the_pipeline_runs_the_five_stages_in_order(pipeline, names):
    assert pipeline["group"] == names["group"]
    assert list(stages(pipeline)) == STAGES


def test_the_material_is_this_repository_as_gocd_reads_it(pipeline):
    """`type: configrepo`: the config repository's own URL, branch and login (GoCD ConfigConverter
    toConfigRepoMaterial), so the file names no URL and works wherever the repository lives."""
    [(name, material)] = pipeline["materials"].items()
    assert name.replace("_", "").isalnum()
    assert material == {"type": "configrepo"}


def test_every_job_runs_on_the_kits_ml_agent(pipeline, names):
    for stage, job_name, job in jobs(pipeline):
        assert job.get("elastic_profile_id") == names["profile"], f"{stage}/{job_name}"
        assert "resources" not in job, "the plugin refuses resources together with elastic_profile_id"


def test_only_production_waits_for_a_person(pipeline):
    manual = {name for name, stage in stages(pipeline).items()
              if stage.get("approval") == "manual" or (stage.get("approval") or {}).get("type") == "manual"}
    assert manual == {"deploy-production"}


def test_every_fetch_gets_the_artifact_train_publishes_from_an_earlier_stage(pipeline):
    train = stages(pipeline)["train"]["jobs"]["train"]
    published = {f"{a['build']['destination']}/{Path(a['build']['source']).name}" for a in train["artifacts"]}
    fetching = list(tasks(pipeline, "fetch"))
    assert {stage for stage, _ in fetching} == {"gate", "deploy-staging", "deploy-production"}
    for stage, fetch in fetching:
        assert fetch["source"] in published
        assert "pipeline" not in fetch, "this run's artifact, or a re-run would deploy another run's model"
        assert STAGES.index(fetch["stage"]) < STAGES.index(stage)
        assert fetch["job"] in stages(pipeline)[fetch["stage"]]["jobs"]
        assert fetch["is_file"] is True and fetch["destination"] == "out"


def test_every_command_refers_to_something_in_this_repository(pipeline):
    for stage, exec_ in tasks(pipeline, "exec"):
        command, args = exec_["command"], [str(a) for a in exec_.get("arguments", [])]
        if command == "python3" and args[:2] != ["-m", "pytest"]:
            module = args[args.index("-m") + 1]
            assert (REPO_ROOT / (module.replace(".", "/") + ".py")).is_file(), f"{stage}: {module}"
            assert importlib.util.find_spec(module) is not None
        elif command == "bash":
            assert (REPO_ROOT / args[0]).is_file(), f"{stage}: {args[0]}"
        elif args[:2] == ["-m", "pytest"]:
            assert (REPO_ROOT / args[2]).is_dir()


def test_deploy_stages_deploy_to_their_own_environment(pipeline):
    for stage, exec_ in tasks(pipeline, "exec"):
        if stage.startswith("deploy-"):
            assert exec_["arguments"] == ["deploy.sh", stage.removeprefix("deploy-")]
