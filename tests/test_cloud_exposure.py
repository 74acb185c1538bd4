"""Exposure on a cloud cluster, offline: `cd4ml plan --stack gke --set participants=30` shows the
Ingress objects, the TLS issuer and the services' public URLs, all schema-valid, with no LoadBalancer
but the ingress controller's; the services' own settings carry their public URLs; the network
policies open exactly the controller's paths. No kubeconfig and no cloud account are needed (nor
used): what a real GKE/EKS account, DNS and Let's Encrypt do with this stays for `cd4ml up`."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest
import yaml
from test_network_policies import connectivity, ports_of
from typer.testing import CliRunner

from infra.cli.main import app
from infra.config import load_stack
from infra.handout import handout_links
from infra.platform.build import build_platform
from infra.policies import load_balancer_violations, pack_config

runner = CliRunner()
STACKS = Path(__file__).resolve().parents[1] / "stacks"
DOMAIN = "workshop.example.com"
SERVICE_NAMESPACES = {"cd4ml-gocd", "cd4ml-logging", "cd4ml-monitoring", "cd4ml-mlflow", "cd4ml-git"}


@pytest.fixture(scope="module")
def gke_plan(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("gke")
    result = runner.invoke(app, ["plan", "--stack", "gke", "--set", "participants=30", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "GKE cluster: " in result.output and "/hour" in result.output
    assert f"https://grafana.{DOMAIN}" in result.output
    assert "TLS: 65 hosts on 1 certificate(s) from letsencrypt" in result.output
    return out


def objects(out: Path, kind: str) -> list[dict]:
    return [yaml.safe_load(p.read_text()) for p in sorted((out / "objects").glob(f"*__{kind.lower()}__*.yaml"))]


def test_an_ingress_per_published_service_and_per_application_namespace(gke_plan):
    ingresses = {(i["metadata"]["namespace"], i["spec"]["rules"][0]["host"]): i for i in objects(gke_plan, "Ingress")}
    services = {host for _, host in ingresses if not host.startswith("p")}
    assert services == {f"{name}.{DOMAIN}" for name in ("gocd", "kibana", "grafana", "mlflow", "gitea")}
    apps = {(ns, host) for ns, host in ingresses if host.startswith("p")}
    assert len(apps) == 60 and ("cd4ml-p07-staging", f"p07-staging.{DOMAIN}") in apps
    for ingress in ingresses.values():
        # HTTPS, with the certificate from Traefik's store (below), not one per Ingress.
        assert ingress["spec"]["tls"] == [{"hosts": [ingress["spec"]["rules"][0]["host"]]}]
        assert not any(key.startswith("cert-manager.io/") for key in ingress["metadata"]["annotations"])
        # `up` awaits the services' Ingresses, not the model services' (their Service comes with a pipeline).
        awaited = ingress["metadata"]["annotations"].get("pulumi.com/skipAwait") != "true"
        assert awaited == (ingress["metadata"]["namespace"] in SERVICE_NAMESPACES), ingress["metadata"]
        assert ingress["spec"]["ingressClassName"] == "cd4ml"
        # HTTPS only: no router on port 80, where Traefik redirects everything but ACME challenges.
        assert ingress["metadata"]["annotations"]["traefik.ingress.kubernetes.io/router.entrypoints"] == "websecure"
    grafana = ingresses[("cd4ml-monitoring", f"grafana.{DOMAIN}")]
    backend = grafana["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": "grafana", "port": {"number": 80}}


def test_model_services_are_published_behind_their_tenants_login(gke_plan):
    """Nothing is published without a login: the services authenticate themselves, and each
    participant's model services sit behind Traefik's basic auth with that participant's login."""
    middlewares = {m["metadata"]["name"]: m for m in objects(gke_plan, "Middleware")}
    assert len(middlewares) == 30 and {m["metadata"]["namespace"] for m in middlewares.values()} == {"cd4ml-ingress"}
    assert middlewares["model-login-p07"]["spec"] == {
        "basicAuth": {"secret": "model-login-p07", "realm": "cd4ml p07", "removeHeader": True}}
    secrets = {s["metadata"]["name"]: s for s in objects(gke_plan, "Secret") if s["metadata"]["name"] in middlewares}
    assert set(secrets) == set(middlewares)
    # One key (Traefik reads a basic-auth Secret of exactly one), generated, never written offline.
    assert secrets["model-login-p07"]["metadata"]["annotations"] == {"cd4ml.dev/generated-keys": "users"}
    assert secrets["model-login-p07"]["stringData"] == {}
    for item in objects(gke_plan, "Ingress"):
        namespace, named = item["metadata"]["namespace"], item["metadata"]["annotations"].get(
            "traefik.ingress.kubernetes.io/router.middlewares")
        if namespace in SERVICE_NAMESPACES:
            assert named is None  # GoCD, Kibana, Grafana, MLflow and Gitea ask for their own logins
        else:
            tenant = namespace.split("-")[1]
            assert named == f"cd4ml-ingress-model-login-{tenant}@kubernetescrd", namespace
    traefik = yaml.safe_load((gke_plan / "releases" / "cd4ml-ingress__traefik.yaml").read_text())["values"]
    app_namespaces = {i["metadata"]["namespace"] for i in objects(gke_plan, "Ingress")} - SERVICE_NAMESPACES
    assert traefik["providers"]["kubernetesIngress"]["crossProviderNamespaces"] == sorted(app_namespaces)


def test_a_model_login_holds_the_participants_bcrypt_line_as_a_secret():
    from pulumi_harness import run_program, unsecret

    settings = {"cd4ml:profile": "cluster", "cd4ml:exposure": "ingress", "cd4ml:domain": DOMAIN,
                "cd4ml:acmeEmail": "facilitator@example.com", "cd4ml:participants": 2}
    registrations = run_program(settings, stack="gke").registrations
    (login,) = [r for r in registrations if r.type == "kubernetes:core/v1:Secret"
                and r.inputs["metadata"]["name"] == "model-login-p02"]
    data, is_secret = unsecret(login.inputs["stringData"])
    assert is_secret and data == {"users": "p02:$2a$10$mock-bcrypt-of-passwords-participant-p02\n"}
    (middleware,) = [r for r in registrations if r.type == "kubernetes:traefik.io/v1alpha1:Middleware"
                     and r.inputs["metadata"]["name"] == "model-login-p02"]
    assert middleware.parent == next(r.urn for r in registrations if r.type == "cd4ml:platform:Ingress")


def test_every_host_is_on_one_certificate_in_the_controllers_store(gke_plan):
    """30 participants: 65 hosts on one certificate (Let's Encrypt allows 50 certificates a week per
    registered domain, 100 names on each), in the controller's namespace, loaded into Traefik's store."""
    hosts = sorted(rule["host"] for i in objects(gke_plan, "Ingress") for rule in i["spec"]["rules"])
    [certificate] = objects(gke_plan, "Certificate")
    assert certificate["metadata"]["namespace"] == "cd4ml-ingress"
    assert sorted(certificate["spec"]["dnsNames"]) == hosts and len(hosts) == 65
    assert certificate["spec"]["issuerRef"] == {"group": "cert-manager.io", "kind": "ClusterIssuer", "name": "cd4ml"}
    assert certificate["metadata"]["annotations"] == {"pulumi.com/skipAwait": "true"}  # issued after DNS, not in up
    traefik = yaml.safe_load((gke_plan / "releases" / "cd4ml-ingress__traefik.yaml").read_text())["values"]
    assert traefik["tlsStore"] == {"default": {"certificates": [{"secretName": certificate["spec"]["secretName"]}]}}
    assert traefik["providers"]["kubernetesCRD"] == {"enabled": True, "namespaces": ["cd4ml-ingress"],
                                                     "defaultTLSResourcesNamespace": "cd4ml-ingress",
                                                     "allowCrossNamespace": False}
    document = json.loads((gke_plan / "platform.json").read_text())
    assert document["ingress"]["certificates"] == {"cd4ml-hosts-1": certificate["spec"]["dnsNames"]}


@pytest.fixture(scope="module")
def gke_stack_of():
    """`gke_stack_of(n)`: the gke stack's model with n participants, built once per n for the tests that
    only read it (48 is the one more of 47: 5 service hosts and 2 per participant)."""
    return functools.cache(lambda participants: build_platform(
        load_stack(STACKS, "gke", {"participants": str(participants)}), "gke"))


@pytest.mark.parametrize("participants, names", [(0, [7]), (47, [99]), (48, [100, 1]), (100, [100, 100, 5])])
def test_hosts_are_shared_out_over_as_few_certificates_as_lets_encrypt_allows(gke_stack_of, participants, names):
    platform = gke_stack_of(participants)
    certificates = [o for o in platform.extra("ingress").objects if o["kind"] == "Certificate"]
    assert [len(c["spec"]["dnsNames"]) for c in certificates] == names
    every = [host for c in certificates for host in c["spec"]["dnsNames"]]
    assert sorted(every) == list(platform.extra("ingress").settings.hosts)  # each host on exactly one
    assert every[:5] == [f"{name}.{DOMAIN}" for name in ("gocd", "kibana", "grafana", "mlflow", "gitea")]
    if participants == 100:
        return  # the most a stack takes
    one_more = gke_stack_of(participants + 1)
    grown = [o for o in one_more.extra("ingress").objects if o["kind"] == "Certificate"]
    # A late participant changes only the last certificate: the others are not ordered again.
    assert [c["spec"] for c in grown[:len(certificates) - 1]] == [c["spec"] for c in certificates[:-1]]


def test_the_issuer_is_lets_encrypt_through_the_controller(gke_plan):
    [issuer] = objects(gke_plan, "ClusterIssuer")
    acme = issuer["spec"]["acme"]
    assert acme["server"] == "https://acme-v02.api.letsencrypt.org/directory"
    assert acme["email"] == "facilitator@example.com"
    assert acme["solvers"] == [{"http01": {"ingress": {"ingressClassName": "cd4ml"}}}]
    rehearsal = build_platform(load_stack(STACKS, "gke", {"tlsIssuer": "self-signed"}), "gke")
    [issuer] = [o for o in rehearsal.extra("ingress").objects if o["kind"] == "ClusterIssuer"]
    assert issuer["spec"] == {"selfSigned": {}}


def test_public_urls_reach_the_services_own_settings(gke_plan):
    document = json.loads((gke_plan / "platform.json").read_text())
    public = {s["name"]: s["public_url"] for s in document["services"]}
    assert public == {"gocd": f"https://gocd.{DOMAIN}/go", "elasticsearch": None, "kibana": f"https://kibana.{DOMAIN}",
                      "fluentd": None, "grafana": f"https://grafana.{DOMAIN}", "mlflow": f"https://mlflow.{DOMAIN}",
                      "gitea": f"https://gitea.{DOMAIN}"}
    releases = {p.stem.split("__")[1]: yaml.safe_load(p.read_text()) for p in (gke_plan / "releases").glob("*.yaml")}
    assert f"mlflow.{DOMAIN}" in releases["mlflow"]["values"]["serverAllowedHosts"]
    assert releases["grafana"]["values"]["grafana.ini"]["server"]["root_url"] == f"https://grafana.{DOMAIN}"
    [kibana] = objects(gke_plan, "Kibana")
    assert kibana["spec"]["config"]["server.publicBaseUrl"] == f"https://kibana.{DOMAIN}"
    assert releases["gitea"]["values"]["gitea"]["config"]["server"]["ROOT_URL"] == f"https://gitea.{DOMAIN}/"
    dashboard = json.loads(next(o for o in objects(gke_plan, "ConfigMap") if o["metadata"]["name"] ==
                                "grafana-dashboards-cd4ml")["data"]["model-monitoring.json"])
    assert {link["url"].split("/app/")[0] for link in dashboard["links"]} == {f"https://mlflow.{DOMAIN}",
                                                                              f"https://kibana.{DOMAIN}"}
    links = handout_links(build_platform(load_stack(STACKS, "gke", {"participants": "2"}), "gke"))
    assert links.gocd == f"https://gocd.{DOMAIN}/go" and links.grafana.startswith(f"https://grafana.{DOMAIN}/d/")


def test_a_participants_handout_names_their_model_services_public_urls(gke_plan, tmp_path):
    document = json.loads((gke_plan / "platform.json").read_text())
    p07 = next(t for t in document["tenants"] if t["name"] == "p07")
    assert p07["model_urls"] == {"staging": f"https://p07-staging.{DOMAIN}",
                                 "production": f"https://p07-production.{DOMAIN}"}
    hosts = {rule["host"] for i in objects(gke_plan, "Ingress") for rule in i["spec"]["rules"]}
    assert {url.removeprefix("https://") for t in document["tenants"] for url in t["model_urls"].values()} <= hosts
    result = runner.invoke(app, ["handout", "--stack", "gke", "--set", "participants=2", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    page = (tmp_path / "p02.md").read_text()
    assert f"- staging: `cd4ml-p02-staging`, at <https://p02-staging.{DOMAIN}>" in page
    assert f"| GoCD | <https://gocd.{DOMAIN}/go> |" in page
    assert "Your login (GoCD, Kibana, Grafana, MLflow, the git server and your model service): **p02**" in page
    assert "sslVerify" not in page  # Let's Encrypt: git trusts it
    assert f"| Git server | <https://gitea.{DOMAIN}/> | your repository <https://gitea.{DOMAIN}/p02/diabetes-model.git> |" \
        in page


def test_no_load_balancer_but_the_ingress_controllers(gke_plan):
    for path in (gke_plan / "objects").glob("*__service__*.yaml"):
        assert yaml.safe_load(path.read_text())["spec"].get("type") != "LoadBalancer", path.name
    asking = []
    for path in sorted((gke_plan / "releases").glob("*.yaml")):
        release = yaml.safe_load(path.read_text())
        props = {"name": release["name"], "values": release["values"]}
        if load_balancer_violations("kubernetes:helm.sh/v3:Release", props, {"profile": "laptop"}):
            asking.append(release["name"])
        # The policy pack, configured as `cd4ml up` configures it for this stack, lets exactly that one through.
        assert load_balancer_violations("kubernetes:helm.sh/v3:Release", props,
                                        pack_config("cluster", ("traefik",))["no-loadbalancer-on-laptop"]) == []
    assert asking == ["traefik"]


def test_the_controller_reaches_exactly_what_it_publishes(tmp_path):
    platform = build_platform(load_stack(STACKS, "gke", {"participants": "2"}), "gke")
    from infra.plan import write_plan

    out = tmp_path / "plan"
    write_plan(platform, out)
    pairs = connectivity(out, platform, tmp_path)
    controller = "cd4ml-ingress/ingress-controller"
    reached = {dst: ports_of(c) for (src, dst), c in pairs.items() if src == controller and "/" in dst
               and not dst.startswith("kube-system")}
    assert reached == {"cd4ml-gocd/gocd": {8153}, "cd4ml-logging/kibana": {5601}, "cd4ml-monitoring/grafana": {3000},
                       "cd4ml-mlflow/mlflow": {5000}, "cd4ml-git/gitea": {3000}, "cd4ml-p01-staging/app-p01-staging": {8080},
                       "cd4ml-p01-production/app-p01-production": {8080},
                       "cd4ml-p02-staging/app-p02-staging": {8080},
                       "cd4ml-p02-production/app-p02-production": {8080}}
    from_outside = {dst: ports_of(c) for (src, dst), c in pairs.items() if "/" not in src and "/" in dst
                    and not dst.startswith("kube-system")}
    assert from_outside["cd4ml-ingress/ingress-controller"] == {8000, 8443}
    assert "cd4ml-mlflow/mlflow" not in from_outside  # only through the controller


def test_cert_manager_may_check_its_challenge_through_the_controller_from_inside(gke_plan):
    """Where the CNI short-circuits the LoadBalancer's IP (kube-proxy, GKE Dataplane V2), cert-manager's
    HTTP-01 self-check reaches the controller's pod on its web port, which its egress must allow."""
    from test_network_policies import policies_in, rules_allowing

    from infra.platform import ingress

    policies = policies_in(gke_plan)
    cert_manager = ("cd4ml-cert-manager", dict(ingress.CERT_MANAGER_CONTROLLER_PODS))
    controller = ("cd4ml-ingress", dict(ingress.controller_pods("cd4ml-ingress")))
    assert rules_allowing(policies, "Egress", cert_manager, controller, ingress.WEB_PORT) == [
        "allow-cert-manager-self-check"]
    assert rules_allowing(policies, "Egress", cert_manager, controller, ingress.WEBSECURE_PORT) == []
    webhook = ("cd4ml-cert-manager", dict(ingress.CERT_MANAGER_WEBHOOK_PODS))
    assert rules_allowing(policies, "Egress", webhook, controller, ingress.WEB_PORT) == []  # the controller only


def test_the_program_reads_the_controllers_address_for_the_dns_record():
    """Under Pulumi's mocks: the Ingress component reads the Service Traefik's release creates, after
    that release, and the stack exports its address; `up` and `status` print the record to create."""
    from pulumi_harness import run_program

    settings = {"cd4ml:profile": "cluster", "cd4ml:exposure": "ingress", "cd4ml:domain": DOMAIN,
                "cd4ml:acmeEmail": "facilitator@example.com"}
    registrations = run_program(settings, stack="gke").registrations
    (component,) = [r for r in registrations if r.type == "cd4ml:platform:Ingress"]
    (release,) = [r for r in registrations if r.type == "kubernetes:helm.sh/v3:Release" and r.name == "ingress-traefik"]
    (read,) = [r for r in registrations if r.type == "kubernetes:core/v1:Service" and r.name.startswith("ingress-")]
    assert read.inputs["id"] == "cd4ml-ingress/traefik"
    assert read.parent == component.urn and release.urn in read.dependencies
    # The shared certificate is the cluster's own object, not awaited (it needs the DNS record first).
    (certificate,) = [r for r in registrations if r.type == "kubernetes:cert-manager.io/v1:Certificate"]
    assert certificate.parent == component.urn and certificate.inputs["spec"]["secretName"] == "cd4ml-hosts-1-tls"
    assert certificate.inputs["metadata"]["annotations"] == {"pulumi.com/skipAwait": "true"}


@pytest.mark.parametrize("status, address", [
    ({"load_balancer": {"ingress": [{"ip": "203.0.113.7"}]}}, "203.0.113.7"),  # GKE
    ({"load_balancer": {"ingress": [{"hostname": "a1b2.elb.us-east-1.amazonaws.com"}]}},
     "a1b2.elb.us-east-1.amazonaws.com"),  # EKS
    ({"load_balancer": {}}, ""),  # not yet given
    (None, ""),
])
def test_the_controllers_address_is_the_load_balancers_ip_or_host_name(status, address):
    from infra.components.ingress import load_balancer_address

    assert load_balancer_address(status) == address
