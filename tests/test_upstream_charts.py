"""The pinned upstream charts rendered with the kit's values, by the same Helm engine as the kit's own.

Needs the charts' sources: `pytest --upstream-charts DIR` (or CD4ML_UPSTREAM_CHARTS=DIR), where DIR
holds one directory per chart (`gocd/`, `eck-operator/`, `fluentd/`, `grafana/`, `mlflow/`, `traefik/`,
`cert-manager/`) at the pinned version. `make upstream-charts` pulls them (needs the chart repositories:
internet). Without DIR these tests are skipped, and say so; the rest of the suite never needs them.

What this proves: every value the kit sets is a key the chart version reads; the rendered objects
are schema-valid; every image they pull is in the kit's image list; the Services the model's
endpoints name really exist with those ports; ECK resources and the ClusterIssuer match their CRDs.
"""

from __future__ import annotations

import dataclasses
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python
import jsonschema
import pytest
import yaml

from infra.config import load_config
from infra.platform.build import build_platform
from infra.platform.model import HelmRelease, Platform
from infra.validate import CUSTOM_KINDS, validate_objects

pytestmark = pytest.mark.upstream


@pytest.fixture(scope="module")
def charts_dir(request) -> Path:
    given = request.config.getoption("--upstream-charts") or os.environ.get("CD4ML_UPSTREAM_CHARTS")
    if not given:
        pytest.skip("upstream chart sources not given: run `make upstream-charts` (needs internet), then "
                    "`pytest --upstream-charts .upstream-charts`")
    return Path(given)


MIRRORS = ["docker.io=harbor.example.com/dockerhub", "docker.elastic.co=harbor.example.com/elastic"]


STACKS: dict[str, dict[str, Any]] = {
    "local": {"cd4ml:profile": "laptop"},
    "cluster": {"cd4ml:profile": "cluster", "cd4ml:elasticsearchNodes": 3, "cd4ml:storageClass": "standard",
                "cd4ml:exposure": "node-port"},
    "mirrored": {"cd4ml:profile": "laptop", "cd4ml:registryMirrors": MIRRORS},
    "ingress": {"cd4ml:profile": "cluster", "cd4ml:participants": 3, "cd4ml:exposure": "ingress",
                "cd4ml:domain": "workshop.example.com", "cd4ml:acmeEmail": "facilitator@example.com",
                "cd4ml:imageRegistry": "registry.example.com/cd4ml",
                "cd4ml:registryMirrors": MIRRORS + ["quay.io=harbor.example.com/quay"]},
}
"""The laptop stack; a cluster stack; one pulling every upstream image through mirrors, which proves
each chart really pulls the (rewritten) image the model lists; and a cloud workshop published through
the ingress controller (Traefik and cert-manager, mirrored too)."""


@pytest.fixture(scope="module", params=list(STACKS))
def platform(request) -> Platform:
    return build_platform(load_config(STACKS[request.param]), request.param)


def releases(platform: Platform) -> list[HelmRelease]:
    return [r for part in platform.parts for r in part.releases]


HELM_MANIFEST_SEPARATOR = re.compile(r"(?:^|\s*\n)---\s*")
"""Helm's own split (releaseutil.SplitManifests): cert-manager's templates render `---# comment`."""


def render(charts_dir: Path, release: HelmRelease) -> tuple[helm_python.Chart, list[dict[str, Any]]]:
    chart = helm_python.Chart.load(charts_dir / release.chart)
    rendered = chart.render(values=release.values, name=release.name, namespace=release.namespace, is_install=True)
    objects = [doc for name, text in sorted(rendered.items()) if not name.endswith("NOTES.txt")
               for manifest in HELM_MANIFEST_SEPARATOR.split(text) for doc in [yaml.safe_load(manifest)] if doc]
    for obj in objects:
        obj.setdefault("metadata", {}).setdefault("namespace", release.namespace)
    return chart, objects


FREE_FORM = {"fileConfigs", "datasources", "envValueFrom", "grafana.ini", "extraArgs", "podSecurityContext",
             "gitea.config"}
"""Maps whose keys the charts iterate over (file names, env names, ini sections, CLI flags) or render
whole into a pod (`toYaml .Values.podSecurityContext`; the Pod Security test proves where it lands).
Gitea's `gitea.config` is app.ini, section by section (_helpers.tpl `gitea.inline_configuration`, `range`
over it); tests/test_gitea_server.py starts the real Gitea with those sections."""
FROM_SOURCE = {"gitea": "0.0.0"}
"""Charts only their git source is at hand for (its release stamps the version: Gitea's 12.7.0 package is
not fetchable here; its source at main 2d7a0d6 is), with the version that source declares."""


def unknown_value_paths(values: Any, defaults: Any, templates: str, declared: frozenset[str] = frozenset(),
                        path: str = "") -> Iterator[str]:
    """Keys the kit sets that the chart neither declares (in values.yaml or its JSON schema) nor reads.
    Under an empty or null default, or a FREE_FORM map, any key is allowed."""
    if not isinstance(values, dict) or not isinstance(defaults, dict) or not defaults or path in FREE_FORM:
        return
    for key, value in values.items():
        here = f"{path}.{key}" if path else key
        if key in defaults:
            yield from unknown_value_paths(value, defaults[key], templates, declared, here)
        elif f".Values.{here}" not in templates and here not in declared:
            yield here


def schema_paths(schema: dict[str, Any] | None) -> frozenset[str]:
    """Every dotted key a chart's values.schema.json declares (cert-manager documents `image.tag` only
    there, commented out in values.yaml, and reads it through a helper)."""
    if not schema:
        return frozenset()
    definitions = schema.get("$defs") or schema.get("definitions") or {}

    def resolve(node: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in node:
            node = definitions[node["$ref"].rsplit("/", 1)[-1]]
        return node

    found: set[str] = set()

    def walk(node: dict[str, Any], path: str, depth: int) -> None:
        for key, child in resolve(node).get("properties", {}).items():
            here = f"{path}.{key}" if path else key
            found.add(here)
            if depth < 8:
                walk(child, here, depth + 1)

    walk(schema, "", 0)
    return frozenset(found)


def pod_specs(objects: list[dict[str, Any]]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for obj in objects:
        spec = obj.get("spec", {})
        pod = spec.get("template", {}).get("spec") or (spec if obj["kind"] == "Pod" else None)
        if pod:
            yield obj, pod


def test_chart_versions_are_the_pinned_ones(charts_dir, platform):
    for release in releases(platform):
        with helm_python.Chart.load(charts_dir / release.chart) as chart:
            assert chart.version in (release.version, FROM_SOURCE.get(release.chart)), \
                f"{release.chart}: have {chart.version}, pinned {release.version}"


def test_every_value_the_kit_sets_is_read_by_the_chart(charts_dir, platform):
    for release in releases(platform):
        chart, _ = render(charts_dir, release)
        with chart:
            chart.validate_schema(release.values)
            templates = "\n".join(t["data"] for t in chart.templates)
            unknown = list(unknown_value_paths(release.values, chart.values, templates, schema_paths(chart.schema)))
        assert unknown == [], f"{release.chart} {release.version} does not know: {unknown}"


CHART_CUSTOM_KINDS = {("traefik.io/v1alpha1", "TLSStore")}
"""Custom resources a chart renders from the kit's values: checked against their CRDs below."""


def test_rendered_objects_are_schema_valid(charts_dir, platform):
    for release in releases(platform):
        chart, objects = render(charts_dir, release)
        chart.close()
        assert objects, release.chart
        validate_objects([o for o in objects if (o["apiVersion"], o["kind"]) not in CHART_CUSTOM_KINDS])


def test_every_image_pulled_is_listed(charts_dir, platform):
    for release in releases(platform):
        chart, objects = render(charts_dir, release)
        chart.close()
        for obj, pod in pod_specs(objects):
            for container in pod.get("containers", []) + pod.get("initContainers", []):
                image = container["image"]
                first = image.split("/")[0]
                # Docker's rule: a first part with a dot or a port names a registry; else it is Docker Hub.
                ref = image if "/" in image and ("." in first or ":" in first) else f"docker.io/{image}"
                assert ref in platform.images, f"{release.chart}: {obj['kind']} {obj['metadata']['name']} pulls {image}"


def test_endpoints_in_the_model_are_services_the_charts_create(charts_dir, platform):
    for name in ("gocd", "fluentd", "grafana", "mlflow"):
        service = platform.services[name]
        (release,) = service.releases
        chart, objects = render(charts_dir, release)
        chart.close()
        services = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Service"}
        assert service.endpoint.service in services, f"{name}: no Service {service.endpoint.service}"
        ports = [p["port"] for p in services[service.endpoint.service]["spec"]["ports"]]
        assert service.endpoint.port in ports, f"{name}: Service ports {ports}"


def test_no_helm_test_pods_or_unwanted_dashboards(charts_dir, platform):
    for release in releases(platform):
        chart, objects = render(charts_dir, release)
        chart.close()
        for obj in objects:
            hook = (obj["metadata"].get("annotations") or {}).get("helm.sh/hook", "")
            assert "test" not in hook, f"{release.chart} renders a test hook {obj['kind']} {obj['metadata']['name']}"
            assert "grafana_dashboard" not in (obj["metadata"].get("labels") or {}), release.chart


def test_secret_references_resolve(charts_dir, platform):
    declared = {(s.namespace, s.name) for s in platform.secrets}
    for release in releases(platform):
        chart, objects = render(charts_dir, release)
        chart.close()
        rendered = {(o["metadata"]["namespace"], o["metadata"]["name"]) for o in objects if o["kind"] == "Secret"}
        for obj, pod in pod_specs(objects):
            for container in pod.get("containers", []):
                for env in container.get("env", []):
                    ref = env.get("valueFrom", {}).get("secretKeyRef")
                    if ref:
                        key = (obj["metadata"]["namespace"], ref["name"])
                        assert key in declared | rendered, f"{release.chart}: {env['name']} -> missing Secret {key}"


def test_fluentd_runs_the_kits_configuration(charts_dir, platform):
    (release,) = platform.services["fluentd"].releases
    chart, objects = render(charts_dir, release)
    chart.close()
    config = next(o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "fluentd-config-fluentd")
    assert config["data"]["04_outputs.conf"].strip() == release.values["fileConfigs"]["04_outputs.conf"].strip()
    assert config["data"]["01_sources.conf"].strip() == release.values["fileConfigs"]["01_sources.conf"].strip()
    (daemonset,) = [o for o in objects if o["kind"] == "DaemonSet"]
    container = daemonset["spec"]["template"]["spec"]["containers"][0]
    assert container["image"].endswith("v1.19.3-debian-elasticsearch8-1.1")
    assert {"name": "forward", "containerPort": 24224, "protocol": "TCP"} in container["ports"]


def test_custom_resources_match_their_operators_crds(charts_dir, platform):
    """ECK's Elasticsearch and Kibana; cert-manager's ClusterIssuer and Certificate when the stack
    publishes through ingress."""
    parts = {part.name: part for part in platform.parts}
    operators = [("elasticsearch", ("elasticsearch", "kibana"), 2)]
    if "ingress" in parts:
        operators.append(("ingress", ("ingress",), 2))  # the issuer, one certificate for 3 participants
    for operator_part, users, expected in operators:
        crds: dict[tuple[str, str], Any] = {}
        for release in parts[operator_part].releases:
            chart, objects = render(charts_dir, release)
            chart.close()
            crds |= {(o["spec"]["group"], o["spec"]["names"]["kind"]): o for o in objects
                     if o["kind"] == "CustomResourceDefinition"}
        # This operator's resources (Traefik's Middlewares are checked with the Traefik chart below).
        resources = [o for name in users for o in parts[name].objects if (o["apiVersion"], o["kind"]) in CUSTOM_KINDS
                     and (o["apiVersion"].split("/")[0], o["kind"]) in crds]
        assert len(resources) == expected, operator_part
        _assert_match_crds(resources, crds)


def test_traefiks_tls_store_matches_its_crd_and_names_the_kits_certificates(charts_dir, platform):
    """The default TLS store the chart renders from the kit's values is a valid TLSStore (the CRD from
    the chart's crds/, which Helm installs first) in the controller's namespace, and lists the secret
    of every Certificate the kit declares, so each published host is served its certificate."""
    if "ingress" not in {part.name for part in platform.parts}:
        pytest.skip("this stack publishes nothing through an ingress controller")
    from infra.platform import ingress

    part = platform.extra("ingress")
    (traefik,) = [r for r in part.releases if r.name == ingress.TRAEFIK_RELEASE]
    (store,) = [o for o in render(charts_dir, traefik)[1] if o["kind"] == "TLSStore"]
    assert (store["metadata"]["name"], store["metadata"]["namespace"]) == ("default", part.namespace)
    crd = yaml.safe_load((charts_dir / traefik.chart / "crds" / "traefik.io_tlsstores.yaml").read_text())
    _assert_match_crds([store], {(crd["spec"]["group"], crd["spec"]["names"]["kind"]): crd})
    secrets = {o["spec"]["secretName"] for o in part.objects if o["kind"] == "Certificate"}
    assert {c["secretName"] for c in store["spec"]["certificates"]} == secrets and secrets


def test_model_logins_are_traefik_middlewares_the_controller_reads(charts_dir, platform):
    """The kit's basic-auth Middlewares match Traefik's CRD; the controller's CRD provider watches
    their namespace, and Ingresses in the application namespaces may name them."""
    if "ingress" not in {part.name for part in platform.parts}:
        pytest.skip("this stack publishes nothing through an ingress controller")
    from infra.platform import ingress

    part = platform.extra("ingress")
    middlewares = [o for o in part.objects if o["kind"] == "Middleware"]
    crd = yaml.safe_load((charts_dir / "traefik" / "crds" / "traefik.io_middlewares.yaml").read_text())
    _assert_match_crds(middlewares, {(crd["spec"]["group"], crd["spec"]["names"]["kind"]): crd})
    (traefik,) = [r for r in part.releases if r.name == ingress.TRAEFIK_RELEASE]
    (controller,) = [o for o in render(charts_dir, traefik)[1]
                     if o["kind"] == "Deployment" and o["metadata"]["name"] == ingress.TRAEFIK_RELEASE]
    args = set(controller["spec"]["template"]["spec"]["containers"][0]["args"])
    app_namespaces = sorted({o["metadata"]["namespace"] for o in part.objects if o["kind"] == "Ingress"
                             and "traefik.ingress.kubernetes.io/router.middlewares" in o["metadata"]["annotations"]})
    assert len(middlewares) == 3 and len(app_namespaces) == 6  # 3 participants, 2 environments each
    assert f"--providers.kubernetescrd.namespaces={part.namespace}" in args
    assert f"--providers.kubernetesingress.crossProviderNamespaces={','.join(app_namespaces)}" in args


def _assert_match_crds(resources: list[dict[str, Any]], crds: dict[tuple[str, str], Any]) -> None:
    for resource in resources:
        group, version = resource["apiVersion"].split("/")
        crd = crds[(group, resource["kind"])]
        (served,) = [v for v in crd["spec"]["versions"] if v["name"] == version]
        schema = served["schema"]["openAPIV3Schema"]
        jsonschema.validate({k: v for k, v in resource.items() if k in ("apiVersion", "kind", "metadata", "spec")},
                            schema)
        assert _unknown_spec_fields(resource["spec"], schema["properties"]["spec"]) == [], resource["kind"]


def _unknown_spec_fields(spec: Any, schema: dict[str, Any], path: str = "spec") -> list[str]:
    """OpenAPI schemas allow unknown fields unless they say otherwise; ECK would drop them silently."""
    if schema.get("x-kubernetes-preserve-unknown-fields") or not isinstance(spec, (dict, list)):
        return []
    if isinstance(spec, list):
        return [p for item in spec for p in _unknown_spec_fields(item, schema.get("items", {}), f"{path}[]")]
    properties = schema.get("properties")
    if properties is None:
        return []
    unknown = []
    for key, value in spec.items():
        if key not in properties:
            unknown.append(f"{path}.{key}")
        else:
            unknown += _unknown_spec_fields(value, properties[key], f"{path}.{key}")
    return unknown


def test_network_policies_select_the_charts_pods_on_their_ports(charts_dir, platform):
    """Each wiring node the model says an upstream chart runs is a pod template the chart renders,
    carrying the node's labels and listening on the port its edges' policies open."""
    pods = []
    for release in releases(platform):
        _, objects = render(charts_dir, release)
        for obj in objects:
            if obj["kind"] in ("Deployment", "StatefulSet", "DaemonSet"):
                template = obj["spec"]["template"]
                ports = {p["containerPort"] for c in template["spec"]["containers"] for p in c.get("ports", [])}
                pods.append((obj["metadata"]["namespace"], template["metadata"].get("labels", {}), ports))
    for edge in platform.wiring:
        provider = edge.provider
        # ECK's pods and the model services (the kit's own ml-app chart) are not an upstream chart's.
        if edge.kind == "deploy" or provider.id in ("elasticsearch", "kibana") or provider.id.startswith("app:"):
            continue
        matching = [(ns, ports) for ns, labels, ports in pods
                    if ns == provider.namespace and set(provider.pods) <= set(labels.items())]
        assert matching, f"no rendered pod carries {provider.id}'s labels {provider.pods}"
        assert any(edge.endpoint.pod_port in ports for _, ports in matching), (provider.id, edge.endpoint.pod_port)
    consumers = {e.consumer for e in platform.wiring
                 if e.consumer.id in ("fluentd", "grafana", "eck-operator", "ingress-controller")}
    for consumer in consumers:
        assert any(ns == consumer.namespace and set(consumer.pods) <= set(labels.items()) for ns, labels, _ in pods), \
            consumer.id


def test_the_charts_pods_pass_their_namespaces_pod_security_level(charts_dir, platform):
    from pod_security import pod_spec, violations

    for release in releases(platform):
        level = platform.pod_security[release.namespace][0]
        for obj in render(charts_dir, release)[1]:
            spec = pod_spec(obj)
            if spec is not None:
                assert list(violations(spec, level)) == [], (release.name, obj["metadata"]["name"], level)


def test_ingress_controller_is_the_one_load_balancer_and_redirects_to_https(charts_dir, platform):
    if "ingress" not in {part.name for part in platform.parts}:
        pytest.skip("this stack publishes nothing through an ingress controller")
    from infra.platform import ingress

    objects = [o for release in releases(platform) for o in render(charts_dir, release)[1]]
    balancers = [o for o in objects if o["kind"] == "Service" and o["spec"].get("type") == "LoadBalancer"]
    assert [(o["metadata"]["namespace"], o["metadata"]["name"]) for o in balancers] == [
        (platform.extra("ingress").namespace, ingress.TRAEFIK_RELEASE)]
    ports = {p["port"]: p["targetPort"] for p in balancers[0]["spec"]["ports"]}
    assert ports == {80: "web", 443: "websecure"}
    (controller,) = [o for o in objects
                     if o["kind"] == "Deployment" and o["metadata"]["name"] == ingress.TRAEFIK_RELEASE]
    (container,) = controller["spec"]["template"]["spec"]["containers"]
    named = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert (named["web"], named["websecure"]) == (ingress.WEB_PORT, ingress.WEBSECURE_PORT)
    args = set(container["args"])
    assert {"--entryPoints.web.http.redirections.entryPoint.to=:443",
            "--entryPoints.web.http.redirections.entryPoint.scheme=https",
            "--entryPoints.web.http.redirections.entryPoint.priority=1"} <= args, sorted(args)
    assert "--global.checkNewVersion=false" in args and "--global.sendAnonymousUsage" not in args
    (ingress_class,) = [o for o in objects if o["kind"] == "IngressClass"]
    assert ingress_class["metadata"]["name"] == ingress.INGRESS_CLASS


def test_a_reserved_address_reaches_the_controllers_service(charts_dir, platform):
    """On GKE the program merges the cluster stack's reserved IP into Traefik's values
    (infra/program.py): the chart puts it on its LoadBalancer Service."""
    if "ingress" not in {part.name for part in platform.parts}:
        pytest.skip("this stack publishes nothing through an ingress controller")
    from infra.components.base import merged
    from infra.platform import ingress

    (traefik,) = [r for r in platform.extra("ingress").releases if r.name == ingress.TRAEFIK_RELEASE]
    values = merged(traefik.values, {"service": {"spec": {"loadBalancerIP": "203.0.113.50"}}})
    (service,) = [o for o in render(charts_dir, dataclasses.replace(traefik, values=values))[1]
                  if o["kind"] == "Service" and o["spec"].get("type") == "LoadBalancer"]
    assert service["spec"]["loadBalancerIP"] == "203.0.113.50"


def test_ingress_network_allowances_select_the_charts_pods_on_their_ports(charts_dir, platform):
    """The paths no wiring edge describes (users to the controller, the API server to cert-manager's
    webhook...) select pods the Traefik and cert-manager charts really render, on ports they listen on."""
    if "ingress" not in {part.name for part in platform.parts}:
        pytest.skip("this stack publishes nothing through an ingress controller")
    from infra.config import load_config
    from infra.platform import ingress
    from infra.platform.layout import Namespaces
    from infra.platform.network import allowances

    config = load_config(STACKS[platform.stack])
    ns = Namespaces.from_config(config)
    pods = [(o["metadata"]["namespace"], o["spec"]["template"]["metadata"].get("labels", {}),
             {p["containerPort"] for c in o["spec"]["template"]["spec"]["containers"] for p in c.get("ports", [])})
            for release in platform.extra("ingress").releases for o in render(charts_dir, release)[1]
            if o["kind"] == "Deployment"]
    checked = 0
    for allowance in allowances(config, ns, platform.services, platform.wiring):
        # cert-manager starts the HTTP-01 solver pods itself, while it issues: no chart renders them.
        if allowance.namespace not in (ns.ingress, ns.cert_manager) or allowance.pods == ingress.ACME_SOLVER_PODS:
            continue
        matching = [ports for namespace, labels, ports in pods
                    if namespace == allowance.namespace and set(allowance.pods) <= set(labels.items())]
        assert matching, f"{allowance.name}: no rendered pod carries {allowance.pods}"
        if allowance.direction == "Ingress":
            assert all({port for _, port in allowance.ports} <= ports for ports in matching), allowance.name
        checked += 1
    assert checked >= 5


@pytest.mark.parametrize("profile", ["laptop", "cluster"])
def test_mlflow_starts_as_the_chart_runs_it_and_fits_its_limit(charts_dir, profile, capsys):
    """The real MLflow server, started with the command, arguments, environment, init container and
    volumes the pinned chart renders from the kit's values, on a read-only root filesystem
    (tests/mlflow_as_charted.py): it becomes ready, keeps its user database on the data volume, serves
    a pipeline's calls, and holds less memory than its limit."""
    from mlflow_as_charted import EXERCISE, bwrap, charted_pod, run_as_charted

    sandbox = bwrap()
    if sandbox is None:
        pytest.skip("bubblewrap cannot make a sandbox here (needs user namespaces or root): "
                    "the server would not see the pod's read-only root filesystem")
    platform = build_platform(load_config({"cd4ml:profile": profile}), "local")
    release = next(r for r in releases(platform) if r.chart == "mlflow")
    _, objects = render(charts_dir, release)
    admin = {"username": "cd4ml-admin", "password": "generated-admin-password-0123456789"}
    pod = charted_pod(objects, {release.values["auth"]["existingAdminSecret"]["name"]: admin})
    assert pod.strategy["type"] == "Recreate"
    port = int(next(a for a in pod.container.args if a.startswith("--port=")).split("=")[1])
    mlflow = Path(sys.executable).with_name("mlflow")
    with run_as_charted(pod, sandbox, mlflow, port) as server:
        ready_after = server.wait_healthy(timeout=180)
        idle = server.memory()
        exercised = server.run_inside(EXERCISE.format(port=port), env={
            "ADMIN_USERNAME": admin["username"], "ADMIN_PASSWORD": admin["password"]})
        assert exercised.returncode == 0 and "EXERCISED" in exercised.stdout, exercised.stderr[-2000:]
        busy = server.memory()
        data = server.volumes["data"]
        assert (data / "basic_auth.db").is_file() and (data / "mlflow.db").is_file()
        assert any((data / "artifacts").rglob("model.bin"))
    limit = pod.container.memory_limit_mib
    with capsys.disabled():
        print(f"\n  mlflow as charted ({profile}): ready in {ready_after:.0f}s; idle {idle}; after a run {busy}; "
              f"limit {limit} MiB")
    assert busy.processes <= 3 and busy.pss_mib < limit
