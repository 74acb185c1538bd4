"""A platform of stand-ins wired the way the kit wires the real one, plus a real MLflow server.

`StandInPlatform(faults)` starts Elasticsearch, Kibana, Grafana, GoCD and Fluentd-forward stand-ins
whose connections come from the kit's model (users, index names, datasource uids) and injects the
named faults where they would happen on a cluster.
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
import yaml
from es_security import Security
from gitea import GiteaStandIn
from gocd_api import GoCDApiStandIn
from kube_objects import configure_desired, with_password_files
from services import (
    Connection,
    ElasticsearchStandIn,
    ForwardStandIn,
    GrafanaStandIn,
    KibanaStandIn,
)

from infra.config import load_config
from infra.configure import elasticsearch as configure_elasticsearch
from infra.configure import kibana as configure_kibana
from infra.configure.api import JsonApi
from infra.configure.gocd import configure, ensure_agents_and_repos
from infra.document import PlatformDocument
from infra.platform import elasticsearch
from infra.platform.build import build_platform
from infra.platform.elasticsearch import EVENT_INDEX_PREFIX
from infra.platform.gitea import ADMIN_USER as GITEA_ADMIN
from infra.platform.gitea import READER_USER, GiteaSettings
from infra.platform.grafana import DATASOURCES
from infra.polling import Observation, poll_until
from infra.smoke.core import SmokeContext, Target

STACK_CONFIG: dict = {}
"""The stack the stand-in platform plays: the local defaults (the git server holds the team's ready
repository, GoCD's config repository)."""
GOCD_ADMIN = ("cd4ml-admin", "gocd-admin-pw")
GITEA_LOGINS = {"cd4ml-admin": "gitea-admin-pw", READER_USER: "gitea-reader-pw"}
PASSWORDS = {"cd4ml-admin": "admin-secret-1", "fluentd": "fluentd-secret-2", "grafana": "grafana-secret-3",
             "kibana-association": "kibana-secret-4"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


MLFLOW_ADMIN = ("cd4ml-admin", "mlflow-admin-pw")
PIPELINES_LOGIN = ("cd4ml-pipelines", "mlflow-pipelines-pw")


def mlflow_server_env(profile: str = "laptop") -> dict[str, str]:
    """The extra environment the kit's values give the MLflow chart's server container."""
    from infra.config import load_config
    from infra.platform.build import build_platform

    (release,) = build_platform(load_config({"cd4ml:profile": profile}), "local").services["mlflow"].releases
    return {name: str(value) for name, value in release.values.get("extraEnvVars", {}).items()}


class MLflowServer:
    """A real `mlflow server` (the PyPI package, same version as the platform's image). With `admin`,
    it runs MLflow's basic-auth app as the chart configures it (the ini the chart's init container
    writes: that admin, NO_PERMISSIONS by default), and `configure_like_the_kit` does what the kit's
    configure Job does.

    `auth_cache` adds MLflow's own credential cache (`auth_cache_ttl_seconds`, which the chart leaves
    off): without it every request re-hashes the password (scrypt, about 0.3 s of CPU), the bulk of a
    smoke run. MLflow drops a user's cached logins when their password changes or they are deleted, so
    what a request is answered is the same; only servers shared by many tests turn it on."""

    def __init__(self, workdir: Path, artifacts: Path | None = None, admin: tuple[str, str] | None = None,
                 allowed_hosts: list[str] | None = None, auth_cache: bool = False):
        self.port = free_port()
        self.workdir, self.admin = workdir, admin
        self.artifacts = artifacts or workdir / "artifacts"
        command = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(self.port),
                   "--backend-store-uri", f"sqlite:///{workdir / 'mlflow.db'}", "--artifacts-destination",
                   str(self.artifacts), "--serve-artifacts", "--workers", "1"]
        if allowed_hosts:  # what the chart sets from serverAllowedHosts (MLFLOW_SERVER_ALLOWED_HOSTS)
            command += ["--allowed-hosts", ",".join(allowed_hosts)]
        # The environment the kit gives the chart's server (job execution off): it runs as the platform's does.
        env = {**os.environ, **mlflow_server_env()}
        if admin:
            ini = workdir / "basic_auth.ini"
            ini.write_text(f"[mlflow]\ndefault_permission = NO_PERMISSIONS\n"
                           f"database_uri = sqlite:///{workdir / 'basic_auth.db'}\nadmin_username = {admin[0]}\n"
                           f"admin_password = {admin[1]}\n"
                           "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
                           + ("auth_cache_ttl_seconds = 3600\n" if auth_cache else ""))
            env["MLFLOW_AUTH_CONFIG_PATH"] = str(ini)
            # CSRF key: the chart generates one into its `<release>-flask-server-secret-key` Secret.
            env["MLFLOW_FLASK_SERVER_SECRET_KEY"] = secrets.token_hex(32)
            command += ["--app-name", "basic-auth"]
        self.log = workdir / "mlflow-server.log"
        with self.log.open("w") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        # Looked at often (the default backoff would notice a server up at 6 s only at 8.7 s).
        if not poll_until(self._healthy, what=f"mlflow server on port {self.port}", timeout=120, max_interval=0.25):
            raise RuntimeError(f"mlflow server exited with {self.process.returncode}: "
                               f"{self.log.read_text()[-1500:]}")

    def configure_like_the_kit(self, platform_config: dict | None = None,
                               logins: dict[str, str] | None = None) -> list:
        """Run infra/configure/mlflow.py against this server with the desired state of a stack. Each call
        has its own password directory: tests sharing the server hand over only their own logins."""
        from infra.config import load_config
        from infra.configure import mlflow as configure_mlflow
        from infra.configure.api import JsonApi
        from infra.platform.build import build_platform

        platform = build_platform(load_config(platform_config or {}), "local")
        desired = configure_desired(platform.services["mlflow"])
        password_dir = Path(tempfile.mkdtemp(prefix="logins-", dir=self.workdir))
        for user, password in (logins or dict([PIPELINES_LOGIN])).items():
            (password_dir / user).write_text(password + "\n")
        desired["password_dir"] = str(password_dir)
        return configure_mlflow.configure(JsonApi(self.url, *self.admin), desired, health_timeout=30)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _healthy(self) -> Observation[bool]:
        if self.process.poll() is not None:
            return Observation(True, False, f"exited with {self.process.returncode}")  # no point waiting
        answer = requests.get(f"{self.url}/health", timeout=2)
        return Observation(answer.status_code == 200, True, f"HTTP {answer.status_code}")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def kit_security(faults: frozenset[str] = frozenset()) -> Security:
    """Elasticsearch's roles as the kit writes them (its roles.yml and its users' roles); ECK gives
    Kibana's association user kibana_system. A `fluentd-role-without-<privilege>` fault strips the writer
    role of that index privilege."""
    roles = yaml.safe_load(elasticsearch.roles_document())
    for fault in faults:
        if fault.startswith("fluentd-role-without-"):
            stripped = fault.removeprefix("fluentd-role-without-").replace("-", "_")
            for grant in roles[elasticsearch.WRITER_ROLE]["indices"]:
                grant["privileges"] = [p for p in grant["privileges"] if p != stripped]
    users = {elasticsearch.username(user): held for user, held in elasticsearch.USERS.items()}
    return Security(roles, users | {"kibana-association": ("kibana_system",)})


@dataclass
class StandInPlatform:
    mlflow_url: str
    faults: frozenset[str] = frozenset()
    stand_ins: list = field(default_factory=list)

    def __post_init__(self) -> None:
        faults = self.faults
        self.es = self._start(ElasticsearchStandIn(dict(PASSWORDS), kit_security(faults)))
        dead = f"http://127.0.0.1:{free_port()}"

        def connection(consumer: str, user: str) -> Connection:
            url, password = self.es.url, PASSWORDS[user]
            if f"{consumer}-wrong-host" in faults:
                url = f"http://127.0.0.2:{self.es.port}"
            if f"{consumer}-wrong-port" in faults:
                url = dead
            if f"{consumer}-wrong-credentials" in faults:
                password = "not-the-password"
            return Connection(url, user, password)

        self.forward = self._start(ForwardStandIn(connection("fluentd", "fluentd"), EVENT_INDEX_PREFIX,
                                                  drop="fluentd-drops-events" in faults))
        admin = {"cd4ml-admin": PASSWORDS["cd4ml-admin"]}
        self.kibana = self._start(KibanaStandIn(connection("kibana", "kibana-association"), users=admin))
        grafana_es = connection("grafana", "grafana")
        platform = build_platform(load_config(STACK_CONFIG), "local")
        provisioned = [json.loads(text) for o in platform.services["grafana"].objects if o["kind"] == "ConfigMap"
                       for text in o["data"].values()]
        self.grafana = self._start(GrafanaStandIn(("admin", "grafana-admin-pw"), {
            uid: (grafana_es, f"{prefix}-*") for uid, (_, prefix) in DATASOURCES.items()},
            dashboards=[] if "grafana-dashboard-missing" in faults else provisioned))
        # Elasticsearch and Kibana as the kit's configure Jobs left them when they ran (their code, run
        # here, against the healthy platform); the faults are what broke afterwards.
        broken_association, self.kibana.association = self.kibana.association, Connection(
            self.es.url, "kibana-association", PASSWORDS["kibana-association"])
        for service, stand_in, module in (("elasticsearch", self.es, configure_elasticsearch),
                                          ("kibana", self.kibana, configure_kibana)):
            if f"{service}-not-configured" not in faults:
                desired = configure_desired(platform.services[service])
                module.configure(JsonApi(stand_in.url, "cd4ml-admin", PASSWORDS["cd4ml-admin"]), desired,
                                 health_timeout=5)
        self.kibana.association = broken_association
        if "elasticsearch-red" in faults:
            self.es.status = "red"
        gitea_settings = platform.services["gitea"].settings
        assert isinstance(gitea_settings, GiteaSettings)
        self.gitea = self._start(GiteaStandIn.as_configured(
            gitea_settings, (GITEA_ADMIN, GITEA_LOGINS[GITEA_ADMIN]), GITEA_LOGINS))
        if "gitea-reader-not-collaborator" in faults:  # its read access taken away after the Job ran
            self.gitea.take_read_access(READER_USER)
        self.gocd = self._configured_gocd(faults)
        # GoCD clones from the git server's in-cluster address: here, the stand-in's.
        self.gocd.git_hosts[platform.services["gitea"].endpoint.url] = self.gitea.url
        if "gitea-reader-removed-later" in faults:  # after GoCD's first check parsed every ready repository
            self.gocd.check_materials()
            self.gitea.take_read_access(READER_USER)
        self.stand_ins.append(self.gocd)
        for service in ("elasticsearch", "fluentd", "kibana", "grafana", "gocd", "gitea"):
            if f"{service}-down" in faults:
                {"elasticsearch": self.es, "fluentd": self.forward, "kibana": self.kibana,
                 "grafana": self.grafana, "gocd": self.gocd, "gitea": self.gitea}[service].stop()

    @staticmethod
    def _configured_gocd(faults: frozenset[str]) -> GoCDApiStandIn:
        """GoCD as the kit's own configure code leaves it (run against the stand-in), then broken. The
        reader's password file is where the Job mounts the Secret gitea-reader; here, a file of its own."""
        gocd = GoCDApiStandIn(users={GOCD_ADMIN[0]: GOCD_ADMIN[1]}).start()
        service = build_platform(load_config(STACK_CONFIG), "local").services["gocd"]
        desired = with_password_files(configure_desired(service), GITEA_LOGINS[READER_USER])
        if "gocd-security-off" in faults:
            desired["auth_config"] = None
        api = JsonApi(f"{gocd.url}/go", *GOCD_ADMIN, anonymous_first=True)
        if desired["auth_config"] is None:
            ensure_agents_and_repos(api, desired)
        else:
            configure(api, desired, health_timeout=5)
        if "gocd-agent-profile-stale" in faults:  # edited by hand: an old MLflow address
            (pod,) = [p for p in gocd.items["elastic_profiles"]["cd4ml-ml"]["properties"]
                      if p["key"] == "PodConfiguration"]
            pod["value"] = pod["value"].replace("mlflow.cd4ml-mlflow", "mlflow.old-namespace")
        if "gocd-starting" in faults:  # restarted after the configure Job ran: starting again
            gocd.healthy = False
        if "gocd-config-repo-broken" in faults:
            gocd.parse_errors["cd4ml-diabetes-model"] = "ci.gocd.yaml: unknown key 'stagess' in pipeline"
        return gocd

    def _start(self, stand_in):
        self.stand_ins.append(stand_in)
        return stand_in.start()

    def document(self) -> PlatformDocument:
        document = PlatformDocument.of(build_platform(load_config(STACK_CONFIG), "local"))
        # The platform lives at the stand-ins' addresses, so Elasticsearch's consumers point there.
        return dataclasses.replace(document, wiring=tuple(
            dataclasses.replace(edge, url=self.es.url) if edge.provider == "elasticsearch" else edge
            for edge in document.wiring))

    def context(self, timeout: float = 3.0) -> SmokeContext:
        document = self.document()
        admin = ("cd4ml-admin", PASSWORDS["cd4ml-admin"])
        targets = {
            "elasticsearch": Target("elasticsearch", self.es.url, *admin),
            "kibana": Target("kibana", self.kibana.url, *admin),
            "grafana": Target("grafana", self.grafana.url, "admin", "grafana-admin-pw"),
            "gocd": Target("gocd", f"{self.gocd.url}/go", *GOCD_ADMIN),
            "fluentd": Target("fluentd", self.forward.url),
            "mlflow": Target("mlflow", self.mlflow_url, *MLFLOW_ADMIN),
            "gitea": Target("gitea", self.gitea.url, GITEA_ADMIN, GITEA_LOGINS[GITEA_ADMIN]),
        }
        return SmokeContext(platform=document, targets=targets, timeout=timeout)

    def stop(self) -> None:
        for stand_in in self.stand_ins:
            stand_in.stop()


@contextmanager
def runs_ahead(request: pytest.FixtureRequest, param: str, run: Callable[[str], object],
               workers: int) -> Iterator[dict[str, Future]]:
    """`run(value)` for every value of `param` the selected tests of this module use, started ahead of
    them on `workers` threads: a fault's smoke run mostly waits (a check that must fail polls until its
    deadline), so side by side they take the time of a few. The first runs alone, so that what a run
    creates once on the shared MLflow (the smoke experiment) is created by one. Each test takes its own
    run's result with `.result()`, which re-raises what that run raised."""
    values = list(dict.fromkeys(
        item.callspec.params[param] for item in request.session.items
        if item.module is request.module and hasattr(item, "callspec") and param in item.callspec.params))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"ahead-{param}") as pool:
        futures: dict[str, Future] = {}
        for value in values:
            futures[value] = pool.submit(run, value)
            if len(futures) == 1:
                futures[value].exception()  # waits; the test reports what it was
        yield futures
