"""MLflow tracking server from the `community-charts/mlflow` chart.

Backend store: SQLite on a volume the kit claims (the chart's default is in-memory, which loses
every run on restart). Artifacts are proxied by the server (`mlflow-artifacts:`), so pipeline
agents and model services need no storage credentials. MLflow 3 rejects requests whose Host
header it does not know; the allowed hosts are derived from the Service endpoint.

Authentication: MLflow's basic-auth app. The chart creates the admin from the Secret `mlflow-admin`
(generated password); the configure Job adds one user per tenant (a participant's own login, or the
single team's `cd4ml-pipelines`) with MANAGE on that tenant's experiment only, and nothing by
default. Pipelines and model services log in as their tenant: a Secret per agents node in the GoCD
namespace and one per application namespace, which their wiring edges name.
Config keys read: mlflowStorageGi, exposure, profile.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlparse

from infra.config import Profile
from infra.platform.access import service_type
from infra.platform.configure_job import configure_job
from infra.platform.context import BuildContext
from infra.platform.hosts import public_url
from infra.platform.kit_images import PYTHON_IMAGE
from infra.platform.layout import Namespaces
from infra.platform.model import (
    PART_OF,
    ChartPin,
    Container,
    Credentials,
    Endpoint,
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
from infra.platform.tenants import Tenant

CHART = ChartPin(repo="https://community-charts.github.io/helm-charts", chart="mlflow", version="1.11.5")
IMAGE = Image(repository="burakince/mlflow", tag="3.15.1")
INI_IMAGE = Image(repository="library/busybox", tag="1.38.0")
"""The chart's init container that writes basic_auth.ini from the admin Secret (its default, pinned here)."""
RELEASE = "mlflow"
PODS: Labels = (("app.kubernetes.io/name", "mlflow"), ("app.kubernetes.io/instance", RELEASE))
HTTP_PORT = 5000
DATA_CLAIM = "mlflow-data"
DATA_DIR = "/mlflow"
SIZES = {
    # Measured (tests/test_mlflow_server.py, tests/mlflow_as_charted.py; `make bench` prints it): the
    # server with job execution off holds 380-460 MiB PSS (about 550 MiB RSS) in two processes, idle
    # or after a run with an artifact; with it on, about 1.5 GiB in ten.
    Profile.LAPTOP: Resources(100, 448, 500, 768),
    Profile.CLUSTER: Resources(250, 512, 1000, 1536),
}


SERVER_ENV_JOB_EXECUTION = "MLFLOW_SERVER_ENABLE_JOB_EXECUTION"
AUTH_DATABASE = f"{DATA_DIR}/basic_auth.db"
"""Where MLflow's users and grants live: on the data volume (the root filesystem is read-only)."""
CONFIGURE_TIMEOUT_SECONDS = 600
ADMIN_USER = "cd4ml-admin"
ADMIN_SECRET = "mlflow-admin"
TENANT_LOGINS_SECRET = "mlflow-tenant-logins"
TENANT_LOGINS_DIR = "/etc/cd4ml/mlflow-logins"
APP_LOGIN_SECRET = "mlflow-login"
"""In each application namespace: the tenant's login, for the model service to load its model."""
DEFAULT_PERMISSION = "NO_PERMISSIONS"
"""What a logged-in user may do with what nobody granted them: nothing; each tenant owns its own."""


def admin_credentials(ns: Namespaces) -> Credentials:
    return Credentials(ns.mlflow, ADMIN_SECRET)


def agents_login(ns: Namespaces, tenant: Tenant) -> Credentials:
    return Credentials(ns.gocd, f"mlflow-login-{tenant.name}")


def app_login(namespace: str) -> Credentials:
    return Credentials(namespace, APP_LOGIN_SECRET)


def login_secret(credentials: Credentials, tenant: Tenant) -> KitSecret:
    return KitSecret(credentials.namespace, credentials.secret,
                     literals=((credentials.username_key, tenant.pipeline_login),),
                     generated=((credentials.password_key, tenant.pipeline_password),),
                     type="kubernetes.io/basic-auth")


def endpoint(ns: Namespaces) -> Endpoint:
    return Endpoint(RELEASE, ns.mlflow, HTTP_PORT)


def allowed_hosts(ep: Endpoint, public_host: str | None = None) -> list[str]:
    """Every name in-cluster clients may use, with and without the port (MLflow does not strip
    it), localhost for `kubectl port-forward`, and the published host behind the ingress."""
    names = [ep.service, f"{ep.service}.{ep.namespace}", f"{ep.service}.{ep.namespace}.svc", ep.host]
    hosts = [h for name in names for h in (name, f"{name}:{ep.port}")] + ["localhost:*", "127.0.0.1:*"]
    return hosts + [public_host] if public_host else hosts


@dataclass(frozen=True)
class MLflowSettings(ServiceSettings):
    experiments: tuple[str, ...]
    """One per tenant."""
    image: str
    """The server's image as this stack pulls it (the smoke probes run it too: python and the MLflow client)."""
    users: dict[str, str]
    """Experiment -> the login that owns it."""


def build(ctx: BuildContext) -> Service:
    ns = ctx.ns
    ep = endpoint(ns)
    size = SIZES[ctx.profile]
    image = ctx.image(IMAGE)
    admin = admin_credentials(ns)
    ini_image = ctx.image(INI_IMAGE)
    public = public_url(ctx.config, "mlflow")
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": DATA_CLAIM, "namespace": ns.mlflow, "labels": dict(PART_OF)},
        "spec": ctx.volume_claim(ctx.config.mlflow_storage_gi),
    }
    values = {
        "image": {"repository": image.name, "tag": image.tag},
        "service": {"type": service_type("mlflow", ctx.config.exposure),
                    "port": HTTP_PORT},
        "resources": size.as_k8s(),
        "backendStore": {"defaultSqlitePath": f"{DATA_DIR}/mlflow.db"},
        "artifactRoot": {"proxiedArtifactStorage": True, "defaultArtifactsDestination": f"{DATA_DIR}/artifacts"},
        # One worker: SQLite and several writer processes do not mix.
        "extraArgs": {"workers": "1"},
        # MLflow 3's job runner and its huey consumers (GenAI scorers, prompt optimisation, trace
        # archival) start with the server unless turned off: about ten processes, over a laptop's
        # limit at idle (mlflow/environment_variables.py; measured by tests/mlflow_as_charted.py).
        # Tracking, the registry and artifacts — all a CD4ML pipeline uses — need none of them.
        "extraEnvVars": {SERVER_ENV_JOB_EXECUTION: "false"},
        # One pod at a time: the SQLite files sit on a ReadWriteOnce claim, which the chart's
        # default rolling update (maxSurge 100%) would have two pods share.
        "strategy": {"type": "Recreate"},
        "extraVolumes": [{"name": "data", "persistentVolumeClaim": {"claimName": DATA_CLAIM}}],
        "extraVolumeMounts": [{"name": "data", "mountPath": DATA_DIR}],
        "serverAllowedHosts": allowed_hosts(ep, urlparse(public).hostname if public else None),
        # The chart's defaults are hardened but for seccomp, which the `restricted` Pod Security level requires.
        "podSecurityContext": {"fsGroup": 1001, "fsGroupChangePolicy": "OnRootMismatch",
                               "seccompProfile": {"type": "RuntimeDefault"}},
        "initImages": {"iniFileInitializer": {"repository": ini_image.name, "tag": ini_image.tag}},
        "auth": {
            "enabled": True,
            "existingAdminSecret": {"name": admin.secret, "usernameKey": admin.username_key,
                                    "passwordKey": admin.password_key},
            "defaultPermission": DEFAULT_PERMISSION,
            # On the data volume: users and grants survive a restart. The chart 1.11.5 joins folder
            # and file with no separator (templates/auth_ini_configmap.yaml: `printf "%s/" | trimSuffix
            # "/"`, then `sqlite:///%s%s`): only a trailing slash gives /mlflow/basic_auth.db.
            "sqliteFullPath": f"{DATA_DIR}/",
        },
    }
    edge = ctx.configure_edge("mlflow")
    configure = configure_job(
        name="mlflow-configure", namespace=ns.mlflow, module="mlflow",
        desired={"tenants": [{"user": t.pipeline_login, "experiment": t.experiment, "tenant": t.name}
                             for t in ctx.tenants], "password_dir": TENANT_LOGINS_DIR},
        env={"MLFLOW_URL": edge.target.url, "CD4ML_HEALTH_TIMEOUT": str(CONFIGURE_TIMEOUT_SECONDS - 60)},
        secret_env={"MLFLOW_USERNAME": edge.login.username, "MLFLOW_PASSWORD": edge.login.password},
        timeout_seconds=CONFIGURE_TIMEOUT_SECONDS, image=ctx.image(PYTHON_IMAGE),
        secret_files=((TENANT_LOGINS_SECRET, TENANT_LOGINS_DIR),))
    # The admin; the tenants' passwords for the configure Job (one file per user); and each login
    # where its wiring edge says the consumer finds it.
    secrets = [KitSecret(ns.mlflow, admin.secret, literals=((admin.username_key, ADMIN_USER),),
                         generated=((admin.password_key, GeneratedPassword("mlflow-admin")),),
                         type="kubernetes.io/basic-auth"),
               KitSecret(ns.mlflow, TENANT_LOGINS_SECRET,
                         generated=tuple((t.pipeline_login, t.pipeline_password) for t in ctx.tenants))]
    for tenant in ctx.tenants:
        consumers = [tenant.agents_node] + [tenant.app_node(env) for env, _ in tenant.environments]
        secrets += [login_secret(e.credentials, tenant) for node in consumers
                    if (e := ctx.edge(node, "mlflow")) and e.credentials]
    return Service(
        name="mlflow",
        namespace=ns.mlflow,
        endpoint=ep,
        credentials=admin,
        secrets=tuple(secrets),
        stages=(Stage(objects=(claim,)), Stage(releases=(CHART.release(RELEASE, ns.mlflow, values),)),
                Stage(objects=configure)),
        workloads=(Workload(RELEASE, "Deployment", 1, (Container("mlflow", image, size),)),),
        extra_images=(ctx.image(PYTHON_IMAGE), ini_image),
        public_url=public,
        settings=MLflowSettings(experiments=tuple(t.experiment for t in ctx.tenants), image=image.ref,
                                users={t.experiment: t.pipeline_login for t in ctx.tenants}),
    )
