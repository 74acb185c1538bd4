"""The kit's Pulumi policy pack (infra/policies.py, served by policy/__main__.py): each rule run
directly through pulumi-policy's own argument types, against a resource that breaks it and one that
keeps it; then the whole pack over every resource the kit's program registers under Pulumi's mocks,
which must pass. Rules are looked up in the pack by name, so dropping one from POLICIES fails its test."""

from __future__ import annotations

import os
from typing import Any

import pytest
import yaml
from pulumi_harness import run_program, unsecret
from pulumi_policy import (
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from stack_settings import workshop

from infra.policies import PACK_NAME, POLICIES, pack_config


def rule(name: str):
    matches = [p for p in POLICIES if p.name == name]
    assert len(matches) == 1, f"policy {name} is not in the pack"
    return matches[0]


def violations(name: str, resource_type: str, props: dict, profile: str = "laptop",
               load_balancers: tuple[str, ...] = ()) -> list[str]:
    policy = rule(name)
    assert isinstance(policy, ResourceValidationPolicy)
    config = pack_config(profile, load_balancers).get(name, {})
    args = ResourceValidationArgs(resource_type, props, f"urn:test::{resource_type}::x", "x",
                                  PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), []),
                                  None, config)
    found: list[str] = []
    policy.validate(args, lambda message, urn=None: found.append(message))
    return found


def stack_violations(resources: list[tuple[str, dict]]) -> list[str]:
    policy = rule("pods-covered-by-network-policy")
    assert isinstance(policy, StackValidationPolicy)
    args = StackValidationArgs([PolicyResource(t, props, f"urn:{i}", f"r{i}", None, None, None, [], {})
                                for i, (t, props) in enumerate(resources)])
    found: list[str] = []
    policy.validate(args, lambda message, urn=None: found.append(message))
    return found


def deployment(image: str = "docker.io/library/python:3.13.7-slim", resources: Any = "default",
               env: list | None = None, labels: dict | None = None) -> dict:
    resources = {"requests": {"cpu": "10m", "memory": "8Mi"},
                 "limits": {"cpu": "100m", "memory": "64Mi"}} if resources == "default" else resources
    return {"metadata": {"name": "d", "namespace": "team"}, "spec": {"template": {
        "metadata": {"labels": labels or {"app": "d"}},
        "spec": {"containers": [{"name": "c", "image": image, "resources": resources, "env": env or []}]}}}}


DEPLOYMENT = "kubernetes:apps/v1:Deployment"
RELEASE = "kubernetes:helm.sh/v3:Release"


def test_no_latest_image():
    assert violations("no-latest-image", DEPLOYMENT, deployment("nginx:latest"))
    assert violations("no-latest-image", DEPLOYMENT, deployment("registry.example.com:5000/nginx"))
    assert violations("no-latest-image", RELEASE, {"name": "r", "values": {"image": {"tag": "latest"}}})
    assert violations("no-latest-image", DEPLOYMENT, deployment()) == []
    assert violations("no-latest-image", DEPLOYMENT, deployment("nginx@sha256:" + "a" * 64)) == []
    assert violations("no-latest-image", RELEASE, {"name": "r", "values": {"image": {"tag": "v26.1.0"}}}) == []


def test_requests_and_limits():
    assert violations("requests-and-limits", DEPLOYMENT, deployment(resources={})) == [
        "container c has no requests for cpu, memory", "container c has no limits for cpu, memory"]
    assert violations("requests-and-limits", DEPLOYMENT,
                      deployment(resources={"requests": {"cpu": "1"}, "limits": {"cpu": "1", "memory": "1Gi"}})) == [
        "container c has no requests for memory"]
    assert violations("requests-and-limits", DEPLOYMENT, deployment()) == []


def test_no_loadbalancer_on_laptop():
    service = {"metadata": {"name": "grafana"}, "spec": {"type": "LoadBalancer"}}
    assert violations("no-loadbalancer-on-laptop", "kubernetes:core/v1:Service", service)
    assert violations("no-loadbalancer-on-laptop", RELEASE,
                      {"name": "grafana", "values": {"service": {"type": "LoadBalancer"}}})
    assert violations("no-loadbalancer-on-laptop", "kubernetes:core/v1:Service", service, profile="cluster")
    assert violations("no-loadbalancer-on-laptop", RELEASE,
                      {"name": "grafana", "values": {"service": {"type": "NodePort"}}}) == []


def test_no_plaintext_secret():
    assert violations("no-plaintext-secret", RELEASE, {"name": "g", "values": {"adminPassword": "hunter2"}}) == [
        "values.adminPassword holds a literal secret: reference a Secret instead"]
    assert violations("no-plaintext-secret", "kubernetes:core/v1:ConfigMap", {"data": {"API_TOKEN": "t0k"}})
    assert violations("no-plaintext-secret", DEPLOYMENT,
                      deployment(env=[{"name": "ES_PASSWORD", "value": "hunter2"}]))
    kept = {"name": "g", "values": {"admin": {"existingSecret": "grafana-admin", "passwordKey": "admin-password"},
                                    "adminPassword": "", "env": {"PASSWORD_FILE": "/etc/x/password"},
                                    "secureJsonData": {"basicAuthPassword": "${ES_PASSWORD}"}}}
    assert violations("no-plaintext-secret", RELEASE, kept) == []
    assert violations("no-plaintext-secret", DEPLOYMENT, deployment(env=[
        {"name": "ES_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "s", "key": "password"}}},
        {"name": "GOCD_PASSWORD_FILE", "value": "/etc/cd4ml/credentials/gocd-admin/password"}])) == []


def test_pods_covered_by_network_policy():
    deny_all = ("kubernetes:networking.k8s.io/v1:NetworkPolicy",
                {"metadata": {"namespace": "team"}, "spec": {"podSelector": {}}})
    only_web = ("kubernetes:networking.k8s.io/v1:NetworkPolicy",
                {"metadata": {"namespace": "team"}, "spec": {"podSelector": {"matchLabels": {"app": "web"}}}})
    release = (RELEASE, {"name": "grafana", "namespace": "team"})
    assert stack_violations([(DEPLOYMENT, deployment())]) == ["no NetworkPolicy in team selects the pods of d"]
    assert stack_violations([only_web, (DEPLOYMENT, deployment())]) == [
        "no NetworkPolicy in team selects the pods of d"]
    assert stack_violations([only_web, release]) == [
        "release grafana: namespace team has no policy selecting every pod (default-deny)"]
    assert stack_violations([only_web, (DEPLOYMENT, deployment(labels={"app": "web"}))]) == []
    assert stack_violations([deny_all, (DEPLOYMENT, deployment()), release]) == []


def registered_resources(monitor) -> list[tuple[str, dict]]:
    """What the engine would hand the pack: every custom resource with its inputs, a ConfigGroup's
    objects as the typed resources the provider registers for them."""
    def plain(value):
        value, _ = unsecret(value)
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, list):
            return [plain(v) for v in value]
        return value

    resources = []
    for registration in monitor.registrations:
        inputs = plain(registration.inputs)
        if registration.type == "kubernetes:yaml/v2:ConfigGroup":
            for obj in inputs["objs"]:
                group, _, version = obj["apiVersion"].rpartition("/")
                resources.append((f"kubernetes:{group or 'core'}/{version}:{obj['kind']}", obj))
        elif registration.custom:
            resources.append((registration.type, inputs))
    return resources


@pytest.mark.parametrize("config", [{}, workshop(participants=2),
                                    {"cd4ml:exposure": "node-port"},
                                    {"cd4ml:profile": "cluster", "cd4ml:participants": 2, "cd4ml:exposure": "ingress",
                                     "cd4ml:domain": "w.example.com", "cd4ml:tlsIssuer": "self-signed"}],
                         ids=["local", "workshop", "node-port", "ingress"])
def test_the_kits_own_resources_pass_the_whole_pack(config):
    resources = registered_resources(run_program(config))
    types = {t for t, _ in resources}
    assert {"kubernetes:batch/v1:Job", RELEASE, "kubernetes:networking.k8s.io/v1:NetworkPolicy",
            "kubernetes:core/v1:ConfigMap", "kubernetes:core/v1:Secret"} <= types
    profile = config.get("cd4ml:profile", "laptop")
    load_balancers = ("traefik",) if config.get("cd4ml:exposure") == "ingress" else ()
    found = {policy.name: [message for t, props in resources
                           for message in violations(policy.name, t, props, profile, load_balancers)]
             for policy in POLICIES if isinstance(policy, ResourceValidationPolicy)}
    found["pods-covered-by-network-policy"] = stack_violations(resources)
    assert found == {policy.name: [] for policy in POLICIES}


def test_the_pack_serves_exactly_these_rules():
    main = (__import__("pathlib").Path(__file__).parents[1] / "policy" / "__main__.py").read_text()
    assert "policies=POLICIES" in main
    assert [p.name for p in POLICIES] == ["no-latest-image", "requests-and-limits", "no-loadbalancer-on-laptop",
                                          "no-plaintext-secret", "pods-covered-by-network-policy"]


def test_the_pack_runs_in_the_venv_make_up_creates():
    """Pulumi never creates a local pack's venv (only `pulumi install`, or packs published to its
    service): the pack names the kit's own, which `make up` creates from requirements.txt. The Python
    host resolves `virtualenv` against the pack's folder (pulumi-language-python parseOptions,
    toolchain/pip.go resolveVirtualEnvironmentPath: filepath.Join(root, virtualenv))."""
    from infra.platform.kit_images import REPO_ROOT

    pack = yaml.safe_load((REPO_ROOT / "policy" / "PulumiPolicy.yaml").read_text())["runtime"]["options"]
    program = yaml.safe_load((REPO_ROOT / "Pulumi.yaml").read_text())["runtime"]["options"]
    assert os.path.normpath(REPO_ROOT / "policy" / pack["virtualenv"]) == os.path.normpath(
        REPO_ROOT / program["virtualenv"])
    makefile = (REPO_ROOT / "Makefile").read_text()
    assert "VENV := .venv" in makefile and program["virtualenv"] == ".venv"
    pins = (REPO_ROOT / "requirements.txt").read_text()
    assert "pulumi_policy==" in pins or "pulumi-policy==" in pins


def test_the_pack_starts_as_the_python_host_starts_it():
    """`python -u -m pulumi.policy <engine address> <pack dir>` in the pack's folder (pulumi-language-python
    RunPlugin for kind analyzer): it must print its port and answer GetAnalyzerInfo with the kit's rules,
    with the packages of requirements.txt (here, the test venv's interpreter, which has them)."""
    import subprocess
    import sys

    import grpc
    from google.protobuf import empty_pb2
    from pulumi.runtime.proto import analyzer_pb2_grpc

    from infra.platform.kit_images import REPO_ROOT

    pack_dir = REPO_ROOT / "policy"
    analyzer = subprocess.Popen([sys.executable, "-u", "-m", "pulumi.policy", "127.0.0.1:1", str(pack_dir)],
                                cwd=pack_dir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        port = analyzer.stdout.readline().strip()
        assert port.isdigit(), analyzer.stderr.read()[-2000:]
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            info = analyzer_pb2_grpc.AnalyzerStub(channel).GetAnalyzerInfo(empty_pb2.Empty(), timeout=30)
        assert info.name == PACK_NAME
        assert {p.name for p in info.policies} == {p.name for p in POLICIES}
    finally:
        analyzer.kill()
        analyzer.communicate()  # waits, and closes its pipes
