"""Published services (exposure 'ingress'), reached the way participants reach them: from where the
smoke run runs, by the public URL. Each check proves, for one service, that its host resolves, that
the controller presents a certificate the stack's issuer signed (trusted, for Let's Encrypt), that
the service's own checks pass through the controller, and that plain HTTP only redirects to HTTPS.

Every failure names the layer that broke (DNS, certificate, route, the controller's way to the
service, the redirect), because on a workshop morning each has a different fix.

`ingress.model-services`: the sample tenant's published model services ask for its login (and, in
cluster mode, accept it); one not deployed yet (no route until a pipeline creates its Service) is
said so, and the check skips if none is.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from functools import partial
from urllib.parse import urlparse

import requests
import urllib3

from infra.config import TlsIssuer
from infra.document import IngressEntry
from infra.events import DEFAULT_TENANT
from infra.platform.network import allow_to
from infra.smoke.checks import gitea, gocd, grafana, kibana, mlflow
from infra.smoke.core import Check, CheckFailed, CheckResult, Diagnosis, Skip, SmokeContext, Target

THROUGH_THE_CONTROLLER: dict[str, tuple[Callable[[SmokeContext], str | None], ...]] = {
    "gocd": (gocd.server_health,),
    "kibana": (kibana.status,),
    "grafana": (grafana.health,),
    # The REST call too: MLflow refuses a Host header it does not know (its allowed hosts).
    "mlflow": (mlflow.health, mlflow.rest_api),
    "gitea": (gitea.health,),
}
"""The service's own checks, run against its public URL: the same code as in-cluster, other address."""
TRUSTED_ISSUERS = {TlsIssuer.LETSENCRYPT.value}
"""Issuers whose certificates a browser trusts; the others are checked for an answer, not for trust."""
DNS_EXPECTED, CERTIFICATE_EXPECTED = "a DNS record for", "a certificate for"
TRAEFIK_NO_ROUTE = "404 page not found"
"""Traefik's body when no router matches the host: the Ingress is missing or of another class."""


class UnverifiedSession(requests.Session):
    """For issuers no browser trusts (staging, self-signed). A plain session's `verify = False` loses
    to REQUESTS_CA_BUNDLE in the environment (requests merges the environment over the session)."""

    def __init__(self) -> None:
        super().__init__()
        self.verify = False
        # The check's result says "certificate not verified"; urllib3's warning per request adds nothing.
        urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)

    def merge_environment_settings(self, *args, **kwargs):
        return {**super().merge_environment_settings(*args, **kwargs), "verify": False}


def _front_door(context: SmokeContext) -> IngressEntry:
    """platform.json's `ingress` part; the checks skip on stacks that publish nothing."""
    ingress = context.platform.ingress
    if not ingress:
        raise Skip("the stack publishes nothing (exposure is not 'ingress')")
    return ingress


def published(context: SmokeContext, service: str) -> str:
    ingress = _front_door(context)
    document = context.service(service)
    public_url = document.public_url
    if not public_url:
        raise Skip(f"{service} is not published")
    host = urlparse(public_url).hostname or ""
    controller = _resolves(host, ingress)
    session, trusted = _session(ingress)
    answer = _first_answer(session, public_url, service, ingress, controller, allow_to(service))
    if _no_route(answer):
        raise CheckFailed(Diagnosis(
            "ingress", f"GET {public_url}", f"{service} behind the controller",
            f"HTTP 404 {TRAEFIK_NO_ROUTE!r} from the controller",
            f"the controller has no route for this host: the Ingress is missing or not of the kit's class "
            f"(kubectl -n {document.namespace} get ingress)"))
    login = context.targets.get(service)
    public = Target(service, public_url, login.username if login else None, login.password if login else None)
    through = SmokeContext(platform=context.platform, targets={service: public}, timeout=context.timeout,
                           cluster=context.cluster, run_id=context.run_id, session=session,
                           cleanups=context.cleanups)
    notes = [check(through) or "" for check in THROUGH_THE_CONTROLLER[service]]
    _redirects_to_https(host, service)
    trust = "certificate trusted" if trusted else f"certificate not verified (tlsIssuer {ingress.issuer})"
    return f"{public_url}: {'; '.join(n for n in notes if n)}; {trust}; http redirects to https"


def model_services(context: SmokeContext) -> str:
    ingress = _front_door(context)
    tenant = context.sample_tenant.name or DEFAULT_TENANT
    published_apps = ingress.model_services.get(tenant) or {}
    if not published_apps:
        raise Skip("no model service is published")
    session, _ = _session(ingress)
    notes, deployed = [], False
    for env, app in published_apps.items():
        url = app.url
        controller = _resolves(urlparse(url).hostname or "", ingress)
        answer = _first_answer(session, f"{url}/healthz", f"the {env} model service", ingress, controller,
                               allow_to(app.node))
        if _no_route(answer):
            notes.append(f"{env}: not deployed yet")
            continue
        deployed = True
        if answer.status_code != 401:
            raise CheckFailed(Diagnosis(
                "ingress", f"GET {url}/healthz", "HTTP 401: the tenant's login in front of its model service",
                f"HTTP {answer.status_code} without a login",
                "the model service is published without a login: its Ingress lost the router.middlewares "
                f"annotation, or the Middleware is gone (kubectl -n {ingress.namespace} get middleware)"))
        login = _tenant_login(context, env)
        if login is None:
            notes.append(f"{env}: login required")
            continue
        accepted = session.get(f"{url}/healthz", auth=login, timeout=10)
        if accepted.status_code == 401:
            raise CheckFailed(Diagnosis(
                "ingress", f"GET {url}/healthz as {login[0]}", "the tenant's login accepted",
                "HTTP 401 with the login",
                f"the Middleware's Secret in {ingress.namespace} does not hold this login's bcrypt line "
                "(both come from one generated password: run `cd4ml up` again)"))
        notes.append(f"{env}: login required and accepted (HTTP {accepted.status_code})")
    if not deployed:
        urls = ", ".join(app.url for app in published_apps.values())
        raise Skip(f"no model service of {tenant} is deployed yet ({urls}): a pipeline's deploy stage publishes it")
    return "; ".join(notes)


def _tenant_login(context: SmokeContext, env: str) -> tuple[str, str] | None:
    """The sample tenant's login as its model services hold it (their MLflow login Secret), read in
    cluster mode; a direct run cannot read it."""
    edge = next((e for e in context.app_edges("mlflow") if e.consumer.endswith(f":{env}")), None)
    if context.cluster is None or not edge or not (edge and edge.credentials_secret):
        return None
    namespace, secret = edge.credentials_secret.split("/", 1)
    data = context.cluster.read_secret(namespace, secret)
    return (data["username"], data["password"]) if data.get("username") and data.get("password") else None


def waits_for_dns_or_certificate(result: CheckResult) -> bool:
    """A failure right after `up` that time and the facilitator's DNS record will mend: no record yet,
    or the certificate not issued yet (Let's Encrypt needs the record first)."""
    diagnosis = result.diagnosis
    return bool(result.name.startswith("ingress.") and diagnosis and (
        diagnosis.expected.startswith(DNS_EXPECTED) or diagnosis.expected.startswith(CERTIFICATE_EXPECTED)))


def _resolves(host: str, ingress: dict) -> str:
    """Raises unless the host has a DNS record; returns how to look at the controller's address."""
    controller = f"kubectl -n {ingress.namespace} get svc {ingress.controller_service}"
    try:
        socket.getaddrinfo(host, 443, type=socket.SOCK_STREAM)
    except socket.gaierror as failure:
        raise CheckFailed(Diagnosis(
            "ingress", host, f"{DNS_EXPECTED} {host}", f"no address ({failure.strerror})",
            f"point a wildcard record *.{ingress.domain} at the ingress controller's address ({controller}); "
            "the kit does not manage DNS")) from None
    return controller


def _session(ingress: dict) -> tuple[requests.Session, bool]:
    trusted = ingress.issuer in TRUSTED_ISSUERS
    return (requests.Session() if trusted else UnverifiedSession()), trusted


def _no_route(answer: requests.Response) -> bool:
    """Traefik's answer for a host no router serves (no Ingress, or its Service does not exist)."""
    return answer.status_code == 404 and answer.text.strip() == TRAEFIK_NO_ROUTE


def _first_answer(session: requests.Session, url: str, service: str, ingress: dict, controller: str,
                  policy: str) -> requests.Response:
    """Tells apart what stops a browser before the service answers: the certificate, the controller's
    address, the controller's way to the service."""
    where, host = f"GET {url}", urlparse(url).hostname
    certificate = next((name for name, hosts in ingress.certificates.items() if host in hosts),
                       "the certificate")
    try:
        answer = session.get(url, timeout=10, allow_redirects=False)
    except requests.exceptions.SSLError as failure:
        raise CheckFailed(Diagnosis(
            "ingress", where, f"{CERTIFICATE_EXPECTED} {host} signed by {ingress.issuer}",
            f"TLS refused ({_short(failure)})",
            f"cert-manager has not issued {certificate} yet, so the controller serves its own default one "
            f"(kubectl -n {ingress.namespace} describe certificate {certificate}; a Let's Encrypt rate "
            "limit shows there too); Let's Encrypt can only issue once the DNS record points at the controller")) \
            from None
    except requests.RequestException as failure:
        raise CheckFailed(Diagnosis(
            "ingress", where, "the ingress controller answering on port 443", f"no answer ({type(failure).__name__})",
            f"the DNS record points elsewhere, or the controller's LoadBalancer has no address yet ({controller})")) \
            from None
    if answer.status_code in (502, 503, 504):
        raise CheckFailed(Diagnosis(
            "ingress", where, f"{service} behind the controller", f"HTTP {answer.status_code} from the controller",
            f"the controller cannot reach {service}: its pods are not ready, or a network policy blocks the "
            f"controller's expose edge (NetworkPolicy {policy} must admit the ingress controller)"))
    return answer


def _redirects_to_https(host: str, service: str) -> None:
    where = f"GET http://{host}/"
    expect = f"a redirect to https://{host}/"
    try:
        answer = requests.get(f"http://{host}/", timeout=10, allow_redirects=False)
    except requests.RequestException as failure:
        raise CheckFailed(Diagnosis("ingress", where, expect, f"no answer ({type(failure).__name__})",
                                    "the controller's LoadBalancer does not forward port 80, which Let's "
                                    "Encrypt's HTTP-01 challenges need")) from None
    location = answer.headers.get("Location", "")
    if answer.status_code not in (301, 302, 307, 308) or not location.startswith(f"https://{host}"):
        raise CheckFailed(Diagnosis(
            "ingress", where, expect, f"HTTP {answer.status_code}" + (f" to {location}" if location else ""),
            f"plain HTTP is served: the redirect on the controller's web entry point is missing, or {service}'s "
            "Ingress lost its HTTPS-only annotation (infra/platform/ingress.py)"))


def _short(failure: Exception) -> str:
    text = str(failure)
    for marker in ("CERTIFICATE_VERIFY_FAILED", "certificate verify failed", "hostname mismatch"):
        if marker.lower() in text.lower():
            return marker
    return type(failure).__name__


CHECKS = (*(Check(f"ingress.{service}", service, partial(published, service=service))
             for service in THROUGH_THE_CONTROLLER),
          Check("ingress.model-services", "ingress", model_services))
