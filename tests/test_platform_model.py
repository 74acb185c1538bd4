"""The platform model: services, endpoints, credentials and the wiring graph, as plain data."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from kube_objects import configure_objects, pick

from infra.config import load_config
from infra.platform import elasticsearch, fluentd, gocd, grafana, mlflow
from infra.platform.build import build_platform
from infra.platform.kit_images import GOCD_AGENT_ML
from infra.platform.model import Platform
from infra.render import kit_objects


def platform_for(**settings: Any) -> Platform:
    return build_platform(load_config({f"cd4ml:{k}": v for k, v in settings.items()}), "test")


@pytest.fixture(scope="module")
def platform() -> Platform:
    return platform_for()


def edge(platform: Platform, consumer: str, provider: str):
    found = [e for e in platform.wiring if e.consumer.id == consumer and e.provider.id == provider]
    assert len(found) == 1, f"expected one edge {consumer} -> {provider}, found {len(found)}"
    return found[0]


def walk(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for key, child in value.items():
            yield from walk(child, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from walk(child, f"{path}[{index}]")
    yield path, value


def release(platform: Platform, service: str):
    (found,) = [r for r in platform.services[service].releases if r.chart != "eck-operator"]
    return found


@pytest.mark.parametrize("consumer, provider", [
    ("fluentd", "elasticsearch"), ("kibana", "elasticsearch"), ("grafana", "elasticsearch"),
    ("gocd-agents", "mlflow"), ("gocd-agents", "fluentd"),
    ("app:staging", "fluentd"), ("app:production", "fluentd"), ("app:staging", "mlflow"),
    ("gocd-agents", "namespace:cd4ml-staging"), ("gocd-agents", "namespace:cd4ml-production"),
])
def test_required_edges_exist(platform, consumer, provider):
    wire = edge(platform, consumer, provider)
    if wire.kind == "connect":
        assert wire.url == platform.services[provider].endpoint.url


def test_service_urls_are_in_cluster_dns_names(platform):
    urls = {name: s.endpoint.url for name, s in platform.services.items()}
    assert urls == {
        "gocd": "http://gocd-server.cd4ml-gocd.svc.cluster.local:8153/go",
        "elasticsearch": "http://elasticsearch-es-http.cd4ml-logging.svc.cluster.local:9200",
        "kibana": "http://kibana-kb-http.cd4ml-logging.svc.cluster.local:5601",
        "fluentd": "tcp://fluentd.cd4ml-logging.svc.cluster.local:24224",
        "grafana": "http://grafana.cd4ml-monitoring.svc.cluster.local:80",
        "mlflow": "http://mlflow.cd4ml-mlflow.svc.cluster.local:5000",
        "gitea": "http://gitea-http.cd4ml-git.svc.cluster.local:3000",
    }


def test_fluentd_output_points_at_the_edge(platform):
    wire = edge(platform, "fluentd", "elasticsearch")
    values = release(platform, "fluentd").values
    outputs = values["fileConfigs"]["04_outputs.conf"]
    assert f"host {wire.endpoint.host}\n" in outputs
    assert f"port {wire.endpoint.port}\n" in outputs
    assert outputs.count("suppress_type_name true") == 2, "ES 8 rejects _type on both outputs"
    assert f"logstash_prefix {elasticsearch.LOG_INDEX_PREFIX}\n" in outputs
    assert f"logstash_prefix {elasticsearch.EVENT_INDEX_PREFIX}-${{tag[0]}}\n" in outputs  # per tenant
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in values["env"]}
    assert refs["ES_PASSWORD"] == {"name": wire.credentials.secret, "key": "password"}
    assert values["service"]["ports"] == [{"name": "forward", "protocol": "TCP", "containerPort": 24224}]
    assert "@label @DISPATCH" in values["fileConfigs"]["05_forward.conf"]


def test_grafana_datasources_use_the_edge(platform):
    wire = edge(platform, "grafana", "elasticsearch")
    values = release(platform, "grafana").values
    sources = values["datasources"]["datasources.yaml"]["datasources"]
    assert {s["uid"] for s in sources} == set(grafana.DATASOURCES)
    assert all(f"{s['url']}:" not in wire.url and s["url"] == wire.url for s in sources)
    assert values["envValueFrom"]["ES_PASSWORD"]["secretKeyRef"]["name"] == wire.credentials.secret
    assert wire.credentials.namespace == platform.services["grafana"].namespace
    assert values["admin"]["existingSecret"] == platform.services["grafana"].credentials.secret


def test_gocd_agents_get_their_edges_as_env(platform):
    values = release(platform, "gocd").values
    env = {e["name"]: e.get("value") for e in values["agent"]["env"]["extraEnvVars"]}
    assert env["MLFLOW_TRACKING_URI"] == edge(platform, "gocd-agents", "mlflow").url
    assert env["FLUENTD_HOST"] == fluentd.forward_endpoint(platform_ns(platform)).host
    assert env["FLUENTD_PORT"] == "24224"
    assert env["CD4ML_DEPLOY_NAMESPACES"] == "cd4ml-staging,cd4ml-production"
    assert values["agent"]["serviceAccount"]["name"] == gocd.AGENT_SERVICE_ACCOUNT


def platform_ns(platform):
    from infra.platform.layout import Namespaces

    return Namespaces.from_config(load_config({}))


def test_gocd_keeps_the_elastic_agent_plugin(platform):
    server_env = release(platform, "gocd").values["server"]["env"]["extraEnvVars"]
    assert {"name": gocd.ELASTIC_AGENT_PLUGIN[0], "value": gocd.ELASTIC_AGENT_PLUGIN[1]} in server_env


def test_mlflow_accepts_its_own_service_names(platform):
    values = release(platform, "mlflow").values
    ep = platform.services["mlflow"].endpoint
    assert ep.host in values["serverAllowedHosts"]
    assert f"{ep.host}:{ep.port}" in values["serverAllowedHosts"]
    assert values["service"]["port"] == ep.port
    assert values["artifactRoot"]["proxiedArtifactStorage"] is True
    assert values["backendStore"]["defaultSqlitePath"].startswith(mlflow.DATA_DIR)


def test_switching_a_service_off_removes_its_edges_and_env():
    platform = platform_for(services=["gocd", "elasticsearch", "kibana", "fluentd", "grafana"])
    assert "mlflow" not in platform.services
    assert not [e for e in platform.wiring if "mlflow" in (e.consumer.id, e.provider.id)]
    env = {e["name"] for e in release(platform, "gocd").values["agent"]["env"]["extraEnvVars"]}
    assert "MLFLOW_TRACKING_URI" not in env and "FLUENTD_HOST" in env
    configmaps = [o for o in kit_objects(platform) if o["kind"] == "ConfigMap"]
    assert configmaps and all("MLFLOW_TRACKING_URI" not in c["data"] for c in configmaps)


def test_every_secret_reference_resolves_to_a_declared_secret(platform):
    declared = {(s.namespace, s.name, key) for s in platform.secrets
                for key in [k for k, _ in s.literals] + [k for k, _ in s.generated]}
    checked = 0
    for service in platform.services.values():
        for rel in service.releases:
            for path, value in walk(rel.values):
                if path.endswith("secretKeyRef"):
                    assert (rel.namespace, value["name"], value["key"]) in declared, f"{rel.name}: {path}"
                    checked += 1
            if "admin" in rel.values and "existingSecret" in rel.values["admin"]:
                admin = rel.values["admin"]
                for key in (admin["userKey"], admin["passwordKey"]):
                    assert (rel.namespace, admin["existingSecret"], key) in declared
                    checked += 1
    es = pick(platform.services["elasticsearch"].objects, "Elasticsearch", "elasticsearch")
    for ref in es["spec"]["auth"]["fileRealm"] + es["spec"]["auth"]["roles"]:
        assert any(ns == es["metadata"]["namespace"] and name == ref["secretName"] for ns, name, _ in declared)
        checked += 1
    assert checked >= 10  # fluentd env 2, grafana env 2 + admin 2, ES realm 3 + roles 1


def test_passwords_are_generated_never_written(platform):
    for secret in platform.secrets:
        literal_keys = {k for k, _ in secret.literals}
        assert "password" not in literal_keys and "admin-password" not in literal_keys
    assert {pw.id for pw in platform.generated_passwords} == {
        "elasticsearch-admin", "elasticsearch-fluentd", "elasticsearch-grafana", "grafana-admin", "gocd-admin",
        "mlflow-admin", "cd4ml-pipelines", "gitea-admin", "gitea-reader"}
    for service in platform.services.values():
        for rel in service.releases:
            for path, value in walk(rel.values):
                if "password" in path.lower().rsplit(".", 1)[-1] and isinstance(value, str):
                    assert value.startswith("${") or path.endswith(("passwordKey", "passwordMode")), f"{rel.name}: {path}={value}"


def test_laptop_profile_fits_the_budget():
    requests = platform_for().requests
    assert requests["memory_mib"] <= 4096
    assert requests["cpu_millicores"] <= 2000


def test_cluster_profile_is_bigger_and_counts_replicas():
    laptop = platform_for().requests
    cluster = platform_for(profile="cluster", elasticsearchNodes=3).requests
    one_node = platform_for(profile="cluster", elasticsearchNodes=1).requests
    assert cluster["memory_mib"] > laptop["memory_mib"]
    per_node = elasticsearch.NODE_SIZES[elasticsearch.Profile.CLUSTER].memory_request_mi
    assert cluster["memory_mib"] - one_node["memory_mib"] == 2 * per_node


def test_images_are_pinned_and_listed(platform):
    assert len(platform.images) >= 8
    for ref in platform.images:
        name, _, tag = ref.rpartition(":")
        assert name and tag and tag != "latest", ref
    assert "docker.elastic.co/elasticsearch/elasticsearch:8.19.18" in platform.images
    assert f"cd4ml.local/gocd-agent-ml:{GOCD_AGENT_ML.tag}" in platform.images  # elastic agents, built by the kit
    assert "docker.io/library/python:3.13.7-slim" in platform.images  # the configure Job


def test_upstream_charts_are_pinned(platform):
    pins = {(r.chart, r.version) for s in platform.services.values() for r in s.releases}
    assert pins == {("gocd", "2.18.0"), ("eck-operator", "3.5.0"), ("fluentd", "0.6.0"),
                    ("grafana", "12.11.1"), ("mlflow", "1.11.5"), ("gitea", "12.7.0")}


def test_elasticsearch_is_laptop_safe_and_authenticated(platform):
    es = pick(platform.services["elasticsearch"].objects, "Elasticsearch", "elasticsearch")
    (node_set,) = es["spec"]["nodeSets"]
    assert node_set["config"]["node.store.allow_mmap"] is False
    # The laptop's disk is the volume's disk: watermarks as free space, all three as bytes.
    watermarks = {k.rsplit(".", 1)[-1]: v for k, v in node_set["config"].items() if ".disk.watermark." in k}
    assert watermarks == {"low": "2gb", "high": "1gb", "flood_stage": "512mb"}
    assert node_set["podTemplate"]["spec"]["containers"][0]["name"] == "elasticsearch"
    assert es["spec"]["auth"]["disableElasticUser"] is True
    (claim,) = node_set["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "elasticsearch-data"


def test_storage_class_reaches_every_claim():
    platform = platform_for(storageClass="fast")
    es = pick(platform.services["elasticsearch"].objects, "Elasticsearch", "elasticsearch")
    ((claim,),) = [node_set["volumeClaimTemplates"] for node_set in es["spec"]["nodeSets"]]
    assert claim["spec"]["storageClassName"] == "fast"
    assert pick(platform.services["mlflow"].objects, "PersistentVolumeClaim", mlflow.DATA_CLAIM)["spec"][
        "storageClassName"] == "fast"
    assert release(platform, "gocd").values["server"]["persistence"]["storageClass"] == "fast"


def test_node_port_exposure_changes_service_types():
    platform = platform_for(exposure="node-port")
    assert release(platform, "grafana").values["service"]["type"] == "NodePort"
    assert release(platform, "gocd").values["server"]["service"]["type"] == "NodePort"


def test_custom_resources_are_awaited_with_a_deadline(platform):
    for service, kind, condition in (("elasticsearch", "Elasticsearch", "{.status.phase}=Ready"),
                                     ("kibana", "Kibana", "{.status.health}=green")):
        annotations = pick(platform.services[service].objects, kind, service)["metadata"]["annotations"]
        assert annotations["pulumi.com/waitFor"] == f"jsonpath={condition}"
        assert int(annotations["pulumi.com/timeoutSeconds"]) >= 300


def test_registry_mirrors_rewrite_every_upstream_image_and_only_those():
    mirrored = platform_for(registryMirrors=["docker.io=harbor.example.com/dockerhub",
                                             "docker.elastic.co=harbor.example.com/elastic"])
    plain = platform_for()
    for ref in mirrored.images:
        assert ref.startswith(("harbor.example.com/dockerhub/", "harbor.example.com/elastic/", "cd4ml.local/")), ref
    assert len(mirrored.images) == len(plain.images)
    assert "harbor.example.com/elastic/elasticsearch/elasticsearch:8.19.18" in mirrored.images
    es = pick(mirrored.services["elasticsearch"].objects, "Elasticsearch", "elasticsearch")
    assert es["spec"]["image"] == "harbor.example.com/elastic/elasticsearch/elasticsearch:8.19.18"
    _, job = configure_objects(mirrored.services["gocd"])
    assert job["spec"]["template"]["spec"]["containers"][0]["image"] == \
        "harbor.example.com/dockerhub/library/python:3.13.7-slim"
    (fluentd_release,) = mirrored.services["fluentd"].releases
    fluentd_values = fluentd_release.values
    assert fluentd_values["image"]["repository"] == "harbor.example.com/dockerhub/fluent/fluentd-kubernetes-daemonset"


def test_a_malformed_mirror_names_the_key():
    from infra.config import ConfigError

    with pytest.raises(ConfigError, match="registryMirrors .* is not 'registry=mirror'"):
        platform_for(registryMirrors=["https://mirror.example.com"])
