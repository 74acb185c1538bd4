"""The `ingress.*` smoke checks: the published services reached by their public URLs, through a
stand-in of the DNS record and the ingress controller (tests/standins/ingress_controller.py), with a
throwaway CA in the role of Let's Encrypt, the service stand-ins and a real MLflow server behind it —
healthy, and with each fault a workshop morning can bring, caught by the right check with the right cause.
The team's model services sit behind their login, as the kit's Middleware puts them.
"""

from __future__ import annotations

import socket

import pytest
import trustme
from http_standin import HttpStandIn
from ingress_controller import IngressControllerStandIn
from smoke_fixtures import MLFLOW_ADMIN, STACK_CONFIG, MLflowServer, StandInPlatform, free_port
from test_smoke import FAULT_MATRIX

from infra.config import load_config
from infra.document import PlatformDocument
from infra.events import DEFAULT_TENANT
from infra.platform.build import build_platform
from infra.platform.hosts import PUBLIC_SERVICES
from infra.smoke.checks import ingress
from infra.smoke.core import CheckResult
from infra.smoke.runner import run_checks

DOMAIN = "workshop.test"
INGRESS_STACK = {**STACK_CONFIG, "cd4ml:profile": "cluster", "cd4ml:exposure": "ingress", "cd4ml:domain": DOMAIN,
                 "cd4ml:acmeEmail": "facilitator@example.com"}
SERVICE_CHECKS = {f"ingress.{name}" for name in PUBLIC_SERVICES}
CHECKS = SERVICE_CHECKS | {"ingress.model-services"}
TEAM_LOGIN = ("cd4ml-pipelines", "pipelines-pw")
"""The single team's login, which its model services' Middleware admits and their MLflow Secret holds."""


def published_platform(issuer: str = "letsencrypt"):
    return build_platform(load_config({**INGRESS_STACK, "cd4ml:tlsIssuer": issuer}), "ingress")


@pytest.fixture(scope="module")
def lets_encrypt():
    """The CA the facilitator's machine trusts, in the role of Let's Encrypt."""
    return trustme.CA()


@pytest.fixture(scope="module")
def mlflow_published(tmp_path_factory):
    """MLflow as the chart runs it behind the ingress: the kit's allowed hosts, which name the public host.
    A server of its own (once, for this module): MLflow reads its allowed hosts at start only, and the
    run's shared one keeps MLflow's defaults, which test_mlflow_without_the_public_host... needs."""
    (release,) = published_platform().services["mlflow"].releases
    server = MLflowServer(tmp_path_factory.mktemp("mlflow-published"), admin=MLFLOW_ADMIN,
                          allowed_hosts=release.values["serverAllowedHosts"], auth_cache=True)
    server.configure_like_the_kit()
    yield server
    server.stop()


@pytest.fixture
def front_door(monkeypatch, lets_encrypt, mlflow_published, tmp_path):
    """Starts the platform behind the stand-in controller with the given faults; returns the results."""
    started = []
    bundle = tmp_path / "trusted-ca.pem"
    lets_encrypt.cert_pem.write_to_path(str(bundle))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))

    def run(faults: frozenset[str] = frozenset(), issuer: str = "letsencrypt", mlflow_url: str | None = None,
            cluster_mode: bool = False) -> dict[str, CheckResult]:
        services = StandInPlatform(mlflow_url or mlflow_published.url)
        started.append(services)
        routes = {f"gocd.{DOMAIN}": services.gocd.url, f"kibana.{DOMAIN}": services.kibana.url,
                  f"grafana.{DOMAIN}": services.grafana.url, f"mlflow.{DOMAIN}": mlflow_url or mlflow_published.url,
                  f"gitea.{DOMAIN}": services.gitea.url}
        model = HttpStandIn()
        model.route("GET", "/healthz", lambda request: (200, {"status": "ok"}))
        started.append(model.start())
        apps = {f"{env}.{DOMAIN}": model.url for env in ("staging", "production")}
        records = set(routes) | set(apps)
        if "model-not-deployed" not in faults:  # until a pipeline deploys it, its Service does not exist
            routes |= apps
        logins = {} if "model-login-missing" in faults else dict.fromkeys(apps, TEAM_LOGIN)
        if "no-dns-record" in faults:
            records = set()
        if "grafana-ingress-missing" in faults:
            del routes[f"grafana.{DOMAIN}"]
        if "controller-cut-off-from-mlflow" in faults:  # e.g. the expose edge's policy is gone
            routes[f"mlflow.{DOMAIN}"] = f"http://127.0.0.1:{free_port()}"
        document = PlatformDocument.of(published_platform(issuer))
        # The certificate cert-manager issued for the names the kit asks for; before it has, Traefik's
        # own default one (nobody signs it).
        (names,) = document.ingress.certificates.values()
        signer = trustme.CA() if issuer != "letsencrypt" or "certificate-not-issued" in faults else lets_encrypt
        controller = IngressControllerStandIn(routes, signer.issue_cert(*names).configure_cert,
                                              redirect="no-http-redirect" not in faults, logins=logins)
        started.append(controller)
        monkeypatch.setattr(socket, "getaddrinfo", controller.resolver(DOMAIN, records))
        context = services.context(timeout=3.0)
        context.platform = document
        if cluster_mode:  # only what the model-services check reads there: the team's MLflow login Secret
            held = ("cd4ml-pipelines", "stale-pw") if "model-login-stale" in faults else TEAM_LOGIN
            context.cluster = SecretsOnly({("cd4ml-staging", "mlflow-login"): held,
                                           ("cd4ml-production", "mlflow-login"): held})
        return {r.name: r for r in run_checks(context, ingress.CHECKS)}

    yield run
    for stand_in in started:
        stand_in.stop()


class SecretsOnly:
    def __init__(self, logins: dict[tuple[str, str], tuple[str, str]]):
        self.logins = logins

    def read_secret(self, namespace: str, name: str) -> dict[str, str]:
        username, password = self.logins[(namespace, name)]
        return {"username": username, "password": password}


def test_every_published_service_has_its_check():
    assert {check.name for check in ingress.CHECKS} == CHECKS
    assert {s.name for s in PlatformDocument.of(published_platform()).services if s.public_url} == \
        set(PUBLIC_SERVICES)


def test_published_services_answer_through_the_controller_with_trusted_certificates(front_door):
    results = front_door()
    assert {n: r.status for n, r in results.items()} == {name: "pass" for name in CHECKS}, \
        {n: r.detail for n, r in results.items()}
    assert results["ingress.gocd"].detail.startswith(f"https://gocd.{DOMAIN}/go: server healthy")
    for name in SERVICE_CHECKS:
        assert "certificate trusted; http redirects to https" in results[name].detail
    assert results["ingress.model-services"].detail == "staging: login required; production: login required"


def test_in_cluster_mode_the_tenants_own_login_is_tried_too(front_door):
    results = front_door(cluster_mode=True)
    assert results["ingress.model-services"].status == "pass", results["ingress.model-services"].detail
    assert results["ingress.model-services"].detail == (
        "staging: login required and accepted (HTTP 200); production: login required and accepted (HTTP 200)")
    stale = front_door(frozenset({"model-login-stale"}), cluster_mode=True)["ingress.model-services"]
    FAULT_MATRIX.append(("ingress->app (login)", "model-login-stale", "ingress.model-services",
                         "caught" if stale.status == "fail" else "WRONG"))
    assert stale.status == "fail" and "does not hold this login's bcrypt line" in stale.detail
    assert "stale-pw" not in stale.detail and TEAM_LOGIN[1] not in stale.detail


def test_model_services_not_deployed_yet_are_said_so_not_failed(front_door):
    result = front_door(frozenset({"model-not-deployed"}))["ingress.model-services"]
    assert result.status == "skip"
    assert result.detail == (f"no model service of {DEFAULT_TENANT} is deployed yet (https://staging.{DOMAIN}, "
                             f"https://production.{DOMAIN}): a pipeline's deploy stage publishes it")


@pytest.mark.parametrize("issuer", ["letsencrypt-staging", "self-signed"])
def test_untrusted_issuers_are_answered_and_said_so(front_door, issuer):
    results = front_door(issuer=issuer)
    assert {r.status for r in results.values()} == {"pass"}, {n: r.detail for n, r in results.items()}
    assert f"certificate not verified (tlsIssuer {issuer})" in results["ingress.grafana"].detail


FAULTS = [
    # (fault, checks that must fail, words the diagnosis must contain)
    ("no-dns-record", CHECKS, f"point a wildcard record *.{DOMAIN} at the ingress controller"),
    ("certificate-not-issued", CHECKS, "cert-manager has not issued cd4ml-hosts-1 yet"),
    ("grafana-ingress-missing", {"ingress.grafana"}, "no route for this host"),
    ("controller-cut-off-from-mlflow", {"ingress.mlflow"}, "allow-to-mlflow must admit the ingress controller"),
    ("no-http-redirect", SERVICE_CHECKS, "plain HTTP is served"),
    ("model-login-missing", {"ingress.model-services"}, "published without a login"),
]


@pytest.mark.parametrize("fault, expected, cause", FAULTS, ids=[f[0] for f in FAULTS])
def test_front_door_fault_is_caught_by_exactly_the_right_checks(front_door, fault, expected, cause):
    results = front_door(frozenset({fault}))
    failed = {n for n, r in results.items() if r.status == "fail"}
    FAULT_MATRIX.append(("ingress (front door)", fault, ", ".join(sorted(failed)) or "-",
                         "caught" if failed == expected else "WRONG"))
    assert failed == expected, {n: r.detail for n, r in results.items()}
    for name in expected:
        assert cause in results[name].detail, results[name].detail
    assert all(r.status == "pass" for n, r in results.items() if n not in expected)


def test_mlflow_without_the_public_host_in_its_allowed_hosts_is_caught(front_door, mlflow_server):
    """What the public host in MLflow's `serverAllowedHosts` is for: an MLflow with its default allowed
    hosts refuses the Host header the controller passes on."""
    results = front_door(mlflow_url=mlflow_server.url)
    failed = {n for n, r in results.items() if r.status == "fail"}
    FAULT_MATRIX.append(("ingress->mlflow (allowed hosts)", "public-host-not-allowed", ", ".join(sorted(failed)),
                         "caught" if failed == {"ingress.mlflow"} else "WRONG"))
    assert failed == {"ingress.mlflow"}
    assert "serverAllowedHosts" in results["ingress.mlflow"].detail


def test_stacks_without_ingress_skip_the_checks_and_say_why(front_door):
    services = StandInPlatform("http://127.0.0.1:9")
    try:
        results = run_checks(services.context(), ingress.CHECKS)
    finally:
        services.stop()
    assert {(r.status, r.detail) for r in results} == {("skip", "the stack publishes nothing (exposure is not "
                                                                "'ingress')")}
