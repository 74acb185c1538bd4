"""The `ingress.*` smoke checks: the published services reached by their public URLs, through a
stand-in of the DNS record and the ingress controller (tests/standins/ingress_controller.py), with a
throwaway CA in the role of Let's Encrypt, the service stand-ins and a real MLflow server behind it —
healthy, and with each fault a workshop morning can bring, caught by the right check with the right cause.
"""

from __future__ import annotations

import socket

import pytest
import trustme
from ingress_controller import IngressControllerStandIn
from smoke_fixtures import MLFLOW_ADMIN, STACK_CONFIG, MLflowServer, StandInPlatform, free_port
from test_smoke import FAULT_MATRIX

from infra.config import load_config
from infra.plan import platform_document
from infra.platform.build import build_platform
from infra.platform.ingress import PUBLIC_SERVICES
from infra.smoke.checks import ingress
from infra.smoke.core import CheckResult
from infra.smoke.runner import run_checks

DOMAIN = "workshop.test"
INGRESS_STACK = {**STACK_CONFIG, "cd4ml:profile": "cluster", "cd4ml:exposure": "ingress", "cd4ml:domain": DOMAIN,
                 "cd4ml:acmeEmail": "facilitator@example.com"}
CHECKS = {f"ingress.{name}" for name in PUBLIC_SERVICES}


def published_platform(issuer: str = "letsencrypt"):
    return build_platform(load_config({**INGRESS_STACK, "cd4ml:tlsIssuer": issuer}), "ingress")


@pytest.fixture(scope="module")
def lets_encrypt():
    """The CA the facilitator's machine trusts, in the role of Let's Encrypt."""
    return trustme.CA()


@pytest.fixture(scope="module")
def mlflow_published(tmp_path_factory):
    """MLflow as the chart runs it behind the ingress: the kit's allowed hosts, which name the public host."""
    (release,) = published_platform().services["mlflow"].releases
    server = MLflowServer(tmp_path_factory.mktemp("mlflow-published"), admin=MLFLOW_ADMIN,
                          allowed_hosts=release.values["serverAllowedHosts"])
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

    def run(faults: frozenset[str] = frozenset(), issuer: str = "letsencrypt",
            mlflow_url: str | None = None) -> dict[str, CheckResult]:
        services = StandInPlatform(mlflow_url or mlflow_published.url)
        started.append(services)
        routes = {f"gocd.{DOMAIN}": services.gocd.url, f"kibana.{DOMAIN}": services.kibana.url,
                  f"grafana.{DOMAIN}": services.grafana.url, f"mlflow.{DOMAIN}": mlflow_url or mlflow_published.url}
        records = set(routes)
        if "no-dns-record" in faults:
            records = set()
        if "grafana-ingress-missing" in faults:
            del routes[f"grafana.{DOMAIN}"]
        if "controller-cut-off-from-mlflow" in faults:  # e.g. the expose edge's policy is gone
            routes[f"mlflow.{DOMAIN}"] = f"http://127.0.0.1:{free_port()}"
        document = platform_document(published_platform(issuer))
        # The certificate cert-manager issued for the names the kit asks for; before it has, Traefik's
        # own default one (nobody signs it).
        (names,) = document["ingress"]["certificates"].values()
        signer = trustme.CA() if issuer != "letsencrypt" or "certificate-not-issued" in faults else lets_encrypt
        controller = IngressControllerStandIn(routes, signer.issue_cert(*names).configure_cert,
                                              redirect="no-http-redirect" not in faults)
        started.append(controller)
        monkeypatch.setattr(socket, "getaddrinfo", controller.resolver(DOMAIN, records))
        context = services.context(timeout=3.0)
        context.platform = document
        return {r.name: r for r in run_checks(context, ingress.CHECKS)}

    yield run
    for stand_in in started:
        stand_in.stop()


def test_every_published_service_has_its_check():
    assert {check.name for check in ingress.CHECKS} == CHECKS
    assert {s["name"] for s in platform_document(published_platform())["services"] if s["public_url"]} == \
        set(PUBLIC_SERVICES)


def test_published_services_answer_through_the_controller_with_trusted_certificates(front_door):
    results = front_door()
    assert {n: r.status for n, r in results.items()} == {name: "pass" for name in CHECKS}, \
        {n: r.detail for n, r in results.items()}
    assert results["ingress.gocd"].detail.startswith(f"https://gocd.{DOMAIN}/go: server healthy")
    for result in results.values():
        assert "certificate trusted; http redirects to https" in result.detail


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
    ("no-http-redirect", CHECKS, "plain HTTP is served"),
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
