"""The kit's own images: what they are built from, and that their tags follow their content."""

from __future__ import annotations

import re

from infra.platform.gocd import AGENT_BASE_IMAGE, ML_APP_CHART_PATH
from infra.platform.kit_images import GOCD_AGENT_ML, KIT_IMAGES, MODEL_RUNTIME, PYTHON_IMAGE, KitImage


def from_line(image: KitImage) -> str:
    return re.search(r"^FROM (\S+)", image.dockerfile.read_text(), re.M).group(1)


def test_images_build_from_the_pinned_bases():
    assert from_line(GOCD_AGENT_ML) == AGENT_BASE_IMAGE.ref
    assert from_line(MODEL_RUNTIME) == PYTHON_IMAGE.ref


def test_every_copied_path_exists_and_is_an_input_of_the_tag():
    for image in KIT_IMAGES:
        for source, _target in re.findall(r"^COPY (\S+) (\S+)", image.dockerfile.read_text(), re.M):
            assert (image.context / source).exists(), f"{image.name}: COPY {source} does not exist"
            assert source.startswith(f"images/{image.name}/") or source in image.inputs, (
                f"{image.name} copies {source} but its tag does not depend on it")


def test_agent_image_carries_the_chart_where_the_agents_are_told_it_is():
    assert f"COPY charts/ml-app {ML_APP_CHART_PATH}" in GOCD_AGENT_ML.dockerfile.read_text()


def test_tag_changes_when_an_input_changes(tmp_path, monkeypatch):
    from infra.platform import kit_images

    (tmp_path / "images" / "x").mkdir(parents=True)
    (tmp_path / "images" / "x" / "Dockerfile").write_text("FROM scratch\n")
    (tmp_path / "schema.py").write_text("A = 1\n")
    monkeypatch.setattr(kit_images, "REPO_ROOT", tmp_path)
    image = KitImage("x", "1.0", inputs=("schema.py",))
    before = image.content_digest()
    (tmp_path / "schema.py").write_text("A = 2\n")
    assert image.content_digest() != before
    assert image.tag == f"1.0-{image.content_digest()[:10]}" != f"1.0-{before[:10]}"


def requirement_pins(path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        if "==" in line and not line.lstrip().startswith("#"):
            name, version = line.split("#")[0].strip().split("==")
            pins[name.lower().replace("_", "-")] = version
    return pins


def test_training_and_serving_pin_the_same_libraries():
    """A model saved by the agents must load in the runtime with the library it was saved with: every
    library both images install has one version, the serialization format's (skops) included; the
    example repository's requirements follow the agent image."""
    from infra.platform.kit_images import REPO_ROOT

    agent = requirement_pins(GOCD_AGENT_ML.dockerfile.parent / "requirements.txt")
    runtime = requirement_pins(MODEL_RUNTIME.dockerfile.parent / "requirements.txt")
    example = requirement_pins(REPO_ROOT / "examples" / "model-repo" / "requirements.txt")
    assert "skops" in agent and "skops" in runtime
    shared = set(agent) & set(runtime)
    assert {name: (agent[name], runtime[name]) for name in shared if agent[name] != runtime[name]} == {}
    assert runtime.get("mlflow-skinny") == agent["mlflow"]
    assert {name: version for name, version in example.items() if agent.get(name) != version} == {}


def test_mlflows_client_telemetry_is_off_in_agents_and_model_services():
    """MLflow 3's client sends usage telemetry unless MLFLOW_DISABLE_TELEMETRY is true
    (mlflow/telemetry/utils.py); every pipeline job and model service runs in one of these images."""
    for image in (GOCD_AGENT_ML, MODEL_RUNTIME):
        env = " ".join(re.findall(r"^ENV (.+?)(?<!\\)$", image.dockerfile.read_text().replace("\\\n", " "), re.M))
        assert "MLFLOW_DISABLE_TELEMETRY=true" in env, image.name


def test_a_facilitators_own_agent_image_replaces_the_kits_everywhere_agents_run():
    """`agentImage`: every participant's elastic profile and the static agents run it, the platform's
    image list names it, and `up` no longer builds the kit's agent (the model runtime it still does)."""
    from kube_objects import configure_desired
    from stack_settings import workshop

    from infra.cli.images import kit_images_for
    from infra.config import load_config
    from infra.platform.build import build_platform
    from infra.platform.gocd import elastic_agent_pod

    own = "registry.example.com/workshops/cd4ml-2019-agent:py3.6-1"
    config = load_config(workshop(participants=2, agentImage=own))
    platform = build_platform(config, "workshop")
    desired = configure_desired(platform.services["gocd"])
    assert {elastic_agent_pod(desired, p["id"])["spec"]["containers"][0]["image"]
            for p in desired["elastic_profiles"]} == {own}
    assert own in platform.images and not [ref for ref in platform.images if "gocd-agent-ml" in ref]
    assert kit_images_for(config) == [MODEL_RUNTIME]
    assert kit_images_for(load_config({})) == list(KIT_IMAGES)
