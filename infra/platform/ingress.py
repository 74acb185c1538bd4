"""Exposure on a cloud cluster (`exposure: ingress`): one ingress controller behind the platform's
only LoadBalancer, a host per service under `domain`, TLS certificates issued by cert-manager.

- Traefik (`traefik/traefik` chart) in `<prefix>-ingress`: its Service is the one LoadBalancer; it is
  the default IngressClass; plain HTTP redirects to HTTPS (except ACME's HTTP-01 challenges, which
  cert-manager serves through the same controller).
- cert-manager (`jetstack/cert-manager` chart, CRDs included) in `<prefix>-cert-manager`, and one
  ClusterIssuer: Let's Encrypt (production or staging, HTTP-01 through the controller) or self-signed.
- An Ingress per user-facing service (`<service>.<domain>`) in the service's namespace, and one per
  application namespace for the model service (`<participant>-<env>.<domain>`, or `<env>.<domain>`
  for a single team).
- Few certificates, not one per Ingress: Let's Encrypt issues at most 50 certificates a week per
  registered domain, and a workshop of 100 has 204 hosts. The hosts are shared out over
  `cd4ml-hosts-<k>` Certificates of at most 100 names each (Let's Encrypt's limit per certificate),
  in the controller's namespace, and loaded into Traefik's default TLS store, which serves them by
  SNI to every Ingress's router whatever its namespace. So 100 participants order 3 certificates;
  the HTTP-01 solver pods run in the controller's namespace, not in participants' quotas.
- The services' own settings that must know their public URL come from `infra/platform/hosts.py`:
  MLflow's allowed hosts, Grafana's root URL, Kibana's public base URL; links in dashboards and handouts.
- A model service is published behind its tenant's login (Traefik basic auth: the participant's
  one login, or the single team's pipelines login): a Secret of bcrypt lines and a Middleware per
  tenant in the controller's namespace, named by the tenant's Ingresses. The services authenticate
  on their own; nothing is published without a login.
- The controller reaches what it exposes through wiring edges (kind `expose`), so the network
  policies open exactly those paths.
Config keys read: exposure, domain, acmeEmail, tlsIssuer, profile.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from infra.config import StackConfig, TlsIssuer
from infra.platform.apps import ML_APP_RELEASE
from infra.platform.context import BuildContext
from infra.platform.hosts import host
from infra.platform.model import (
    PART_OF,
    ChartPin,
    Container,
    GeneratedPassword,
    Image,
    KitSecret,
    Labels,
    Resources,
    Service,
    ServiceSettings,
    Stage,
    Workload,
)

NAME = "ingress"
TRAEFIK_CHART = ChartPin(repo="https://traefik.github.io/charts", chart="traefik", version="41.3.0")
TRAEFIK_IMAGE = Image(repository="library/traefik", tag="v3.7.11")
TRAEFIK_RELEASE = "traefik"
TRAEFIK_SIZE = Resources(100, 128, 1000, 512)
WEB_PORT, WEBSECURE_PORT = 8000, 8443
"""The controller's container ports (Service ports 80 and 443)."""
INGRESS_CLASS = "cd4ml"
CERT_MANAGER_CHART = ChartPin(repo="https://charts.jetstack.io", chart="cert-manager", version="v1.21.1")
CERT_MANAGER_IMAGES = tuple(Image(registry="quay.io", repository=f"jetstack/cert-manager-{part}", tag="v1.21.1")
                            for part in ("controller", "webhook", "cainjector", "acmesolver", "startupapicheck"))
CERT_MANAGER_RELEASE = "cert-manager"
CERT_MANAGER_SIZE = Resources(50, 64, 500, 256)
CERT_MANAGER_WEBHOOK_PORT = 10250
ACME_SOLVER_PORT = 8089
ACME_SOLVER_PODS: Labels = (("acme.cert-manager.io/http01-solver", "true"),)
"""The HTTP-01 solver pods cert-manager starts in each Ingress's namespace while a certificate is issued."""
CLUSTER_ISSUER = "cd4ml"
ACME_SERVERS = {
    TlsIssuer.LETSENCRYPT: "https://acme-v02.api.letsencrypt.org/directory",
    TlsIssuer.LETSENCRYPT_STAGING: "https://acme-staging-v02.api.letsencrypt.org/directory",
}
MODEL_LOGIN = "model-login"
"""Prefix of each tenant's Secret and basic-auth Middleware in front of its model services."""
MAX_NAMES_PER_CERTIFICATE = 100
"""Let's Encrypt's limit of names on one certificate."""
CERTIFICATE_PREFIX = "cd4ml-hosts"
SERVICE_ON_HTTPS_ONLY = {"traefik.ingress.kubernetes.io/router.entrypoints": "websecure",
                         "traefik.ingress.kubernetes.io/router.tls": "true"}
"""Traefik's Ingress annotations: a service's router never answers plain HTTP (no password in clear)."""
def controller_pods(namespace: str) -> Labels:
    """The Traefik chart's pod selector labels (its instance label is `<release>-<namespace>`)."""
    return (("app.kubernetes.io/name", "traefik"), ("app.kubernetes.io/instance", f"{TRAEFIK_RELEASE}-{namespace}"))


CERT_MANAGER_PODS: Labels = (("app.kubernetes.io/instance", CERT_MANAGER_RELEASE),)
CERT_MANAGER_CONTROLLER_PODS: Labels = (("app.kubernetes.io/name", "cert-manager"),
                                        ("app.kubernetes.io/instance", CERT_MANAGER_RELEASE))
CERT_MANAGER_WEBHOOK_PODS: Labels = (("app.kubernetes.io/name", "webhook"),
                                     ("app.kubernetes.io/instance", CERT_MANAGER_RELEASE))


def cluster_issuer(config: StackConfig) -> dict[str, Any]:
    if config.tls_issuer is TlsIssuer.SELF_SIGNED:
        spec: dict[str, Any] = {"selfSigned": {}}
    else:
        spec = {"acme": {
            "server": ACME_SERVERS[config.tls_issuer],
            "email": config.acme_email,
            "privateKeySecretRef": {"name": f"{CLUSTER_ISSUER}-acme-account"},
            "solvers": [{"http01": {"ingress": {"ingressClassName": INGRESS_CLASS}}}],
        }}
    return {"apiVersion": "cert-manager.io/v1", "kind": "ClusterIssuer",
            "metadata": {"name": CLUSTER_ISSUER, "labels": dict(PART_OF)}, "spec": spec}


@dataclass(frozen=True)
class PublishedModel:
    """Where one tenant's model service in one environment is published."""

    url: str
    namespace: str
    node: str
    """Its node in the wiring graph."""


@dataclass(frozen=True)
class IngressSettings(ServiceSettings):
    domain: str
    issuer: str
    ingress_class: str
    load_balancer_release: str
    """The controller's release, whose Service is the platform's one LoadBalancer."""
    hosts: tuple[str, ...]
    certificates: dict[str, tuple[str, ...]]
    """Shared Certificate name -> its host names."""
    model_services: dict[str, dict[str, PublishedModel]]
    """Tenant -> environment -> where its model service is published."""


@dataclass(frozen=True)
class ModelLogin:
    """One tenant's login in front of its published model services."""

    secret: KitSecret
    middleware: dict[str, Any]
    reference: str
    """How an Ingress names the Middleware (`<namespace>-<name>@kubernetescrd`, Traefik's id)."""


def model_login(namespace: str, tenant: str, user: str, password: GeneratedPassword) -> ModelLogin:
    """Traefik's basicAuth reads a Secret of exactly one key, a `user:<bcrypt hash>` line each: the
    password itself never sits beside the controller."""
    name = f"{MODEL_LOGIN}-{tenant}"
    secret = KitSecret(namespace, name, password_files=(("users", user, password),))
    middleware = {"apiVersion": "traefik.io/v1alpha1", "kind": "Middleware",
                  "metadata": {"name": name, "namespace": namespace, "labels": dict(PART_OF)},
                  "spec": {"basicAuth": {"secret": name, "realm": f"cd4ml {tenant}", "removeHeader": True}}}
    return ModelLogin(secret, middleware, f"{namespace}-{name}@kubernetescrd")


def ingress(name: str, namespace: str, hostname: str, service: str, port: int,
            login: ModelLogin | None = None) -> dict[str, Any]:
    """No `secretName` and no cert-manager annotation: the host's certificate is one of the shared
    `cd4ml-hosts-<k>` in Traefik's default store (`certificates`); the TLS entry declares the host HTTPS.
    With a `login` (a model service, which a pipeline deploys later) requests need the tenant's login,
    and `up` does not wait for the Service, which the provider's Ingress await would look for for a
    minute, warning, per Ingress."""
    annotations = dict(SERVICE_ON_HTTPS_ONLY)
    if login:
        annotations |= {"traefik.ingress.kubernetes.io/router.middlewares": login.reference,
                        "pulumi.com/skipAwait": "true"}
    return {
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(PART_OF), "annotations": annotations},
        "spec": {
            "ingressClassName": INGRESS_CLASS,
            "tls": [{"hosts": [hostname]}],
            "rules": [{"host": hostname, "http": {"paths": [{
                "path": "/", "pathType": "Prefix",
                "backend": {"service": {"name": service, "port": {"number": port}}}}]}}],
        },
    }


def certificates(namespace: str, hosts: list[str]) -> tuple[dict[str, Any], ...]:
    """The hosts, in order (services first, then participants'), shared out over as few certificates
    as Let's Encrypt allows; a participant added at the end changes only the last certificate."""
    chunks = [hosts[i:i + MAX_NAMES_PER_CERTIFICATE] for i in range(0, len(hosts), MAX_NAMES_PER_CERTIFICATE)]
    return tuple({
        "apiVersion": "cert-manager.io/v1", "kind": "Certificate",
        # Not awaited by `up`: Let's Encrypt can only issue once the facilitator's DNS record exists,
        # which needs the address `up` prints; the `ingress.*` smoke checks report the wait.
        "metadata": {"name": f"{CERTIFICATE_PREFIX}-{k}", "namespace": namespace, "labels": dict(PART_OF),
                     "annotations": {"pulumi.com/skipAwait": "true"}},
        "spec": {
            "secretName": f"{CERTIFICATE_PREFIX}-{k}-tls",
            "dnsNames": chunk,
            "issuerRef": {"group": "cert-manager.io", "kind": "ClusterIssuer", "name": CLUSTER_ISSUER},
            "privateKey": {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"},
        },
    } for k, chunk in enumerate(chunks, start=1))


def traefik_values(image: Image, namespace: str, certificate_secrets: list[str], app_namespaces: list[str],
                   service_type: str = "LoadBalancer") -> dict[str, Any]:
    return {
        "image": {"registry": image.registry, "repository": image.repository, "tag": image.tag},
        "deployment": {"replicas": 2},
        "resources": TRAEFIK_SIZE.as_k8s(),
        "service": {"spec": {"type": service_type}},
        "ingressClass": {"enabled": True, "isDefaultClass": True, "name": INGRESS_CLASS},
        # The CRD provider only for the default TLS store and the model logins, in the controller's own
        # namespace: nobody else's IngressRoutes, Middlewares or TLS stores are read. Only Ingresses in
        # the application namespaces may name a Middleware (the logins).
        "providers": {"kubernetesIngress": {"enabled": True, "publishedService": {"enabled": True},
                                            "crossProviderNamespaces": sorted(app_namespaces)},
                      "kubernetesCRD": {"enabled": True, "namespaces": [namespace],
                                        "defaultTLSResourcesNamespace": namespace, "allowCrossNamespace": False}},
        "tlsStore": {"default": {"certificates": [{"secretName": secret} for secret in certificate_secrets]}},
        "ingressRoute": {"dashboard": {"enabled": False}},
        # Port 80 redirects to 443, through a router of the lowest priority: the services' Ingresses
        # only listen on 443 (SERVICE_ON_HTTPS_ONLY), and cert-manager's challenge Ingresses, on every
        # entry point with a longer rule, still answer Let's Encrypt on port 80.
        "ports": {"web": {"port": WEB_PORT, "exposedPort": 80, "http": {"redirections": {"entryPoint": {
                      "to": "websecure", "scheme": "https", "permanent": True, "priority": 1}}}},
                  "websecure": {"port": WEBSECURE_PORT, "exposedPort": 443}},
        "global": {"checkNewVersion": False, "sendAnonymousUsage": False},
    }


def cert_manager_values(images: tuple[Image, ...]) -> dict[str, Any]:
    controller, webhook, cainjector, acmesolver, startupapicheck = images
    return {
        "crds": {"enabled": True},
        "image": {"repository": controller.name, "tag": controller.tag},
        "webhook": {"image": {"repository": webhook.name, "tag": webhook.tag},
                    "resources": CERT_MANAGER_SIZE.as_k8s()},
        "cainjector": {"image": {"repository": cainjector.name, "tag": cainjector.tag},
                       "resources": CERT_MANAGER_SIZE.as_k8s()},
        "acmesolver": {"image": {"repository": acmesolver.name, "tag": acmesolver.tag}},
        "startupapicheck": {"image": {"repository": startupapicheck.name, "tag": startupapicheck.tag}},
        "resources": CERT_MANAGER_SIZE.as_k8s(),
        "prometheus": {"enabled": False},
    }


def build(ctx: BuildContext, services: dict[str, Service]) -> Service:
    """The controller, cert-manager, the issuer, and an Ingress per published service and per
    application namespace: where the `expose` edges of the wiring graph say the controller reaches."""
    service_ingresses = [ingress(name, e.provider.namespace, host(ctx.config, name), e.target.service,
                                         e.target.port)
                         for name in services if (e := ctx.edge("ingress-controller", name))]
    app_ingresses, logins = [], []
    for tenant in ctx.tenants:
        login = model_login(ctx.ns.ingress, tenant.name, tenant.pipeline_login, tenant.pipeline_password)
        logins.append(login)
        for env, namespace in tenant.environments:
            exposed = ctx.expose_edge(tenant.app_node(env)).target
            app_ingresses.append(ingress(ML_APP_RELEASE, namespace, dict(tenant.public_hosts)[env],
                                         exposed.service, exposed.port, login))
    # Where each tenant's model services are published, for the smoke checks (a single team too).
    model_services = {t.name: {env: PublishedModel(t.model_urls[env], namespace, t.app_node(env))
                               for env, namespace in t.environments} for t in ctx.tenants}
    return _assemble(ctx.config, ctx.ns.ingress, ctx.ns.cert_manager, service_ingresses, app_ingresses, logins,
                     model_services, ctx.config.mirrors)


def _assemble(config: StackConfig, namespace: str, cert_namespace: str, service_ingresses: list[dict[str, Any]],
              app_ingresses: list[dict[str, Any]], logins: list[ModelLogin],
              model_services: dict[str, dict[str, PublishedModel]],
              mirrors: dict[str, str]) -> Service:
    traefik_image = TRAEFIK_IMAGE.through(mirrors)
    cert_images = tuple(image.through(mirrors) for image in CERT_MANAGER_IMAGES)
    controller, webhook, cainjector, acmesolver, startupapicheck = cert_images
    hosts = [rule["host"] for item in service_ingresses + app_ingresses for rule in item["spec"]["rules"]]
    shared = certificates(namespace, hosts)
    secrets = [c["spec"]["secretName"] for c in shared]
    app_namespaces = [item["metadata"]["namespace"] for item in app_ingresses]
    return Service(
        name=NAME,
        namespace=namespace,
        endpoint=None,
        credentials=None,
        secrets=tuple(login.secret for login in logins),
        # cert-manager (with its CRDs) before the issuer; the controller before the Ingresses it serves.
        stages=(Stage(releases=(CERT_MANAGER_CHART.release(CERT_MANAGER_RELEASE, cert_namespace,
                                                            cert_manager_values(cert_images)),
                                TRAEFIK_CHART.release(TRAEFIK_RELEASE, namespace,
                                                      traefik_values(traefik_image, namespace, secrets,
                                                                     app_namespaces)))),
                Stage(objects=(cluster_issuer(config),)),
                Stage(objects=(*shared, *(login.middleware for login in logins), *service_ingresses,
                               *app_ingresses))),
        workloads=(Workload(TRAEFIK_RELEASE, "Deployment", 2, (Container("traefik", traefik_image, TRAEFIK_SIZE),)),
                   *(Workload(f"cert-manager-{part}", "Deployment", 1, (Container(part, image, CERT_MANAGER_SIZE),))
                     for part, image in (("controller", controller), ("webhook", webhook),
                                         ("cainjector", cainjector)))),
        extra_images=(acmesolver, startupapicheck),
        settings=IngressSettings(
            domain=config.domain, issuer=config.tls_issuer.value, ingress_class=INGRESS_CLASS,
            load_balancer_release=TRAEFIK_RELEASE, hosts=tuple(sorted(hosts)),
            certificates={c["metadata"]["name"]: tuple(c["spec"]["dnsNames"]) for c in shared},
            model_services=model_services),
    )
