"""Gitea, the in-cluster git server, from its official chart: the ready model repositories live here.

One private repository per tenant, `<participant>/diabetes-model` (a single team's under the admin), seeded
at `up` by the configure Job with the example and the tenant's own pipeline file
(infra/platform/example_repo.py). GoCD registers each as the tenant's config repository and clones it
(server and agents) as the reader `cd4ml-gocd`, who may read every ready repository and write none. A
participant logs in with their one login and sees only their own: users are private, repositories
private, registration closed, nothing readable without a login.

SQLite on the chart's claim, no database or cache sub-charts, no SSH (clone and push over HTTP with the
login). When the stack sets `modelRepos` the teams bring their own repositories: GoCD reads those and the
git server holds no ready copies (two copies of a participant's pipeline would collide in GoCD).
Config keys read: giteaStorageGi, exposure, profile, modelRepos, storageClass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from infra.config import Profile, StackConfig
from infra.platform.access import LOCAL_PORTS, service_type
from infra.platform.configure_job import configure_job
from infra.platform.context import BuildContext
from infra.platform.example_repo import PIPELINE_FILE, REPO_NAME, example_files, tenant_pipeline
from infra.platform.hosts import public_url
from infra.platform.kit_images import PYTHON_IMAGE
from infra.platform.layout import Namespaces
from infra.platform.model import (
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

CHART = ChartPin(repo="https://dl.gitea.com/charts/", chart="gitea", version="12.7.0")
"""Chart 12.7.0 ships Gitea 1.27.0; the image below pins the kit's tested 1.27.3 (the chart's own
`image.tag` key). Values read from the chart's source at its main branch, 2d7a0d6 (README's note)."""
VERSION = "1.27.3"
IMAGE = Image(registry="docker.io", repository="gitea/gitea", tag=f"{VERSION}-rootless")
"""The rootless image: runs as uid 1000, no SSH daemon, what the `restricted` Pod Security level allows."""
RELEASE = "gitea"
PODS: Labels = (("app.kubernetes.io/name", "gitea"), ("app.kubernetes.io/instance", RELEASE))
HTTP_PORT = 3000
DATA_CLAIM = "gitea-data"
ADMIN_USER = "cd4ml-admin"
ADMIN_SECRET = "gitea-admin"
READER_USER = "cd4ml-gocd"
"""Who GoCD's server and agents clone the ready repositories as: read access to each, nothing else."""
READER_SECRET = "gitea-reader"
READER_PASSWORD = GeneratedPassword("gitea-reader")
LOGINS_SECRET = "gitea-logins"
LOGINS_DIR = "/etc/cd4ml/gitea-logins"
EMAIL_DOMAIN = "cd4ml.invalid"
"""Gitea requires an e-mail per user; nobody is mailed (the mailer is off)."""
CONFIGURE_TIMEOUT_SECONDS = 600
SIZES = {
    # Measured (tests/test_gitea_server.py against the real 1.27.3 build; `make bench` prints it): about
    # 170 MiB RSS after start, under 200 MiB after 30 users' repositories were created and seeded.
    Profile.LAPTOP: Resources(50, 192, 500, 384),
    Profile.CLUSTER: Resources(100, 256, 1000, 512),
}
INIT_RESOURCES = Resources(50, 64, 500, 256)
"""The chart's three init containers (directories, app.ini, migrate + admin) run before the server, one
at a time; their own default requests 128 MiB with no limit."""


def endpoint(ns: Namespaces) -> Endpoint:
    return Endpoint(f"{RELEASE}-http", ns.git, HTTP_PORT)


def admin_credentials(ns: Namespaces) -> Credentials:
    return Credentials(ns.git, ADMIN_SECRET)


def reader_credentials(ns: Namespaces) -> Credentials:
    """The reader's login where GoCD's configure Job finds it (to register the config repositories)."""
    return Credentials(ns.gocd, READER_SECRET)


def serves_ready_repos(config: StackConfig) -> bool:
    """Whether GoCD builds the git server's ready repositories: with the server on and no `modelRepos`."""
    return config.enabled("gitea") and not config.model_repos


def owner(tenant: Tenant) -> str:
    return tenant.login or ADMIN_USER


def root_url(config: StackConfig) -> str:
    """What Gitea calls itself in clone URLs and links: the published host, else the port-forward."""
    return public_url(config, "gitea", "/") or f"http://localhost:{LOCAL_PORTS['gitea']}/"


@dataclass(frozen=True)
class ReadyRepo:
    tenant: str
    owner: str
    name: str
    clone_url: str
    """In-cluster, what GoCD's config repository reads."""
    user_url: str
    """What the tenant clones and pushes (published host or port-forward)."""


def ready_repos(config: StackConfig, ns: Namespaces, tenants: tuple[Tenant, ...]) -> tuple[ReadyRepo, ...]:
    if not serves_ready_repos(config):
        return ()
    base = endpoint(ns).url
    return tuple(ReadyRepo(t.name, owner(t), REPO_NAME, f"{base}/{owner(t)}/{REPO_NAME}.git",
                           f"{root_url(config)}{owner(t)}/{REPO_NAME}.git") for t in tenants)


@dataclass(frozen=True)
class GiteaSettings(ServiceSettings):
    repos: tuple[ReadyRepo, ...]
    reader: str
    admin: str


def _values(ctx: BuildContext, image: Image, size: Resources) -> dict[str, Any]:
    config = ctx.config
    persistence: dict[str, Any] = {"enabled": True, "create": True, "claimName": DATA_CLAIM,
                                   "size": f"{config.gitea_storage_gi}Gi"}
    if config.storage_class:
        persistence["storageClass"] = config.storage_class
    return {
        # The whole reference (_helpers.tpl l.56-57), so a registry mirror applies as to every other image.
        "image": {"fullOverride": image.ref, "rootless": True},
        # One pod at a time: SQLite sits on a ReadWriteOnce claim.
        "strategy": {"type": "Recreate"},
        "service": {"http": {"type": service_type("gitea", config.exposure), "port": HTTP_PORT, "clusterIP": ""}},
        "persistence": persistence,
        "resources": size.as_k8s(),
        "initContainers": {"resources": INIT_RESOURCES.as_k8s()},
        "podSecurityContext": {"fsGroup": 1000, "runAsNonRoot": True, "runAsUser": 1000, "runAsGroup": 1000,
                               "seccompProfile": {"type": "RuntimeDefault"}},
        # Every container, the init containers too (deployment.yaml l.142, 186, 350): what `restricted` asks.
        "containerSecurityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
        "test": {"enabled": False},
        **{sub: {"enabled": False} for sub in ("postgresql", "postgresql-ha", "valkey", "valkey-cluster")},
        "gitea": {
            "admin": {"existingSecret": ADMIN_SECRET, "email": f"{ADMIN_USER}@{EMAIL_DOMAIN}",
                      "passwordMode": "keepUpdated"},
            "config": {
                "database": {"DB_TYPE": "sqlite3"},
                "server": {
                    # Named, not left to the chart: it fills HTTP_PORT only while rendering its config, after
                    # the Service's targetPort was rendered empty (_helpers.tpl l.342-343).
                    "HTTP_PORT": HTTP_PORT, "ROOT_URL": root_url(config),
                    "DOMAIN": urlparse(root_url(config)).hostname,
                    "DISABLE_SSH": True, "START_SSH_SERVER": False, "OFFLINE_MODE": True,
                    "LFS_START_SERVER": False},
                "service": {"DISABLE_REGISTRATION": True, "REQUIRE_SIGNIN_VIEW": True,
                            "DEFAULT_USER_VISIBILITY": "private", "DEFAULT_KEEP_EMAIL_PRIVATE": True},
                "repository": {"DEFAULT_PRIVATE": "private", "DEFAULT_BRANCH": "main"},
                "actions": {"ENABLED": False},
                "mailer": {"ENABLED": False},
                # Nothing calls out of the venue (dotted sections are masked for env-to-ini, _helpers l.120).
                "cron.update_checker": {"ENABLED": False},
            },
        },
    }


def _configure(ctx: BuildContext, repos: tuple[ReadyRepo, ...]) -> tuple[dict[str, Any], dict[str, Any]]:
    edge = ctx.configure_edge("gitea")
    files = example_files()
    pipeline = files.pop(PIPELINE_FILE)
    by_name = {t.name: t for t in ctx.tenants}
    desired = {
        "users": [t.login for t in ctx.tenants if t.login] + [READER_USER],
        "reader": READER_USER, "password_dir": LOGINS_DIR, "email_domain": EMAIL_DOMAIN,
        "files": files,
        "repos": [{"owner": r.owner, "name": r.name, "pipeline_file": PIPELINE_FILE,
                   "pipeline": tenant_pipeline(pipeline, by_name[r.tenant]),
                   "message": f"The CD4ML example model, ready for {r.tenant}"} for r in repos],
    }
    return configure_job(
        name="gitea-configure", namespace=ctx.ns.git, module="gitea", desired=desired,
        env={"GITEA_URL": edge.target.url, "CD4ML_HEALTH_TIMEOUT": str(CONFIGURE_TIMEOUT_SECONDS - 60)},
        secret_env={"GITEA_USERNAME": edge.login.username, "GITEA_PASSWORD": edge.login.password},
        timeout_seconds=CONFIGURE_TIMEOUT_SECONDS, image=ctx.image(PYTHON_IMAGE),
        secret_files=((LOGINS_SECRET, LOGINS_DIR),))


def build(ctx: BuildContext) -> Service:
    ns = ctx.ns
    size = SIZES[ctx.profile]
    image = ctx.image(IMAGE)
    admin = admin_credentials(ns)
    repos = ready_repos(ctx.config, ns, ctx.tenants)
    logins = tuple((t.login, t.password) for t in ctx.tenants if t.login and t.password)
    secrets = [
        KitSecret(ns.git, admin.secret, literals=((admin.username_key, ADMIN_USER),),
                  generated=((admin.password_key, GeneratedPassword("gitea-admin")),), type="kubernetes.io/basic-auth"),
        # One file per user for the configure Job: the participants' own passwords and the reader's.
        KitSecret(ns.git, LOGINS_SECRET, generated=logins + ((READER_USER, READER_PASSWORD),)),
    ]
    reading = ctx.edge("gocd", "gitea")  # GoCD's config repositories log in as the reader
    if reading and (reader := reading.credentials):
        secrets.append(KitSecret(reader.namespace, reader.secret, literals=((reader.username_key, READER_USER),),
                                 generated=((reader.password_key, READER_PASSWORD),), type="kubernetes.io/basic-auth"))
    return Service(
        name="gitea",
        namespace=ns.git,
        endpoint=endpoint(ns),
        credentials=admin,
        secrets=tuple(secrets),
        stages=(Stage(releases=(CHART.release(RELEASE, ns.git, _values(ctx, image, size)),)),
                Stage(objects=_configure(ctx, repos))),
        workloads=(Workload(RELEASE, "Deployment", 1, (Container("gitea", image, size),)),),
        extra_images=(ctx.image(PYTHON_IMAGE),),
        public_url=public_url(ctx.config, "gitea"),
        settings=GiteaSettings(repos=repos, reader=READER_USER, admin=ADMIN_USER),
    )
