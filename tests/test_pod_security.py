"""Pod Security admission: each namespace the kit creates enforces a level (`restricted` unless a
component forces less, with the reason on the namespace), and every pod the kit declares, embeds
or previews passes its namespace's level. The upstream charts' pods are checked the same way in
tests/test_upstream_charts.py when their sources are given."""

from __future__ import annotations

import pytest
import yaml
from pod_security import pod_spec, violations
from stack_settings import workshop

from infra.config import load_config
from infra.plan import write_plan
from infra.platform.build import build_platform


@pytest.fixture(scope="module", params=[{}, workshop(participants=2),
                                        {"cd4ml:profile": "cluster", "cd4ml:exposure": "ingress",
                                         "cd4ml:domain": "w.example.com", "cd4ml:tlsIssuer": "self-signed"}],
                ids=["local", "workshop", "ingress"])
def plan(request, tmp_path_factory):
    platform = build_platform(load_config(request.param), "stack")
    out = tmp_path_factory.mktemp("plan")
    write_plan(platform, out)
    objects = [yaml.safe_load(p.read_text()) for folder in ("objects", "embedded", "deploys")
               for p in sorted((out / folder).glob("*.yaml"))]
    return platform, objects


def test_every_namespace_enforces_a_level_and_says_why_not_restricted(plan):
    platform, objects = plan
    namespaces = {o["metadata"]["name"]: o["metadata"] for o in objects if o["kind"] == "Namespace"}
    assert set(namespaces) == set(platform.namespaces)
    levels = {}
    for name, meta in namespaces.items():
        labels = meta["labels"]
        levels[name] = labels["pod-security.kubernetes.io/enforce"]
        assert labels["pod-security.kubernetes.io/warn"] == labels["pod-security.kubernetes.io/audit"] == "restricted"
        assert labels["pod-security.kubernetes.io/enforce-version"].startswith("v1.")
        if levels[name] != "restricted":
            assert len(meta["annotations"]["cd4ml.dev/pod-security-reason"].split()) >= 5
    assert levels.pop("cd4ml-gocd") == "baseline" and levels.pop("cd4ml-logging") == "privileged"
    assert set(levels.values()) == {"restricted"}  # monitoring, mlflow, the operator's and every app namespace


def test_every_pod_the_kit_declares_passes_its_namespaces_level(plan):
    _, objects = plan
    levels = {o["metadata"]["name"]: o["metadata"]["labels"]["pod-security.kubernetes.io/enforce"]
              for o in objects if o["kind"] == "Namespace"}
    checked = 0
    for obj in objects:
        spec = pod_spec(obj)
        if spec is None:
            continue
        # The kit's own pods aim higher than their namespace needs: all of them pass `restricted`,
        # except GoCD's agents, which the gocd namespace's `baseline` admits (see checkov-allowlist.yaml).
        level = "baseline" if obj["metadata"]["name"].startswith("gocd-agent") else "restricted"
        assert list(violations(spec, level)) == [], obj["metadata"]
        assert list(violations(spec, levels[obj["metadata"]["namespace"]])) == [], obj["metadata"]
        for container in spec["containers"]:
            assert container["resources"]["requests"] and container["resources"]["limits"], obj["metadata"]
            assert not container["image"].endswith(":latest") and ":" in container["image"].rsplit("/", 1)[-1]
        checked += 1
    assert checked >= 7


def test_the_checker_rejects_what_admission_would():
    root = {"containers": [{"name": "c", "image": "x:1"}]}
    assert "c: runAsNonRoot not true" in violations(root, "restricted")
    assert list(violations(root, "baseline")) == []
    host = {"volumes": [{"name": "logs", "hostPath": {"path": "/var/log"}}], "containers": [{"name": "c"}]}
    assert list(violations(host, "baseline")) == ["hostPath volume logs"]
    assert list(violations(host, "privileged")) == []
