"""The vocabulary of smoke checks: targets, checks, results and diagnoses.

A check is a named predicate over the running platform. It passes by returning, fails by raising
`CheckFailed` with a `Diagnosis` (component, endpoint tried, expected, seen, likely cause), and is
skipped by raising `Skip` with the reason — never passed by default.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import requests

from infra.document import EdgeEntry, PlatformDocument, SampleTenant, ServiceEntry
from infra.platform.model import ServiceSettings

S = TypeVar("S", bound=ServiceSettings)

Status = Literal["pass", "fail", "skip"]


@dataclass(frozen=True)
class Diagnosis:
    component: str
    endpoint: str
    expected: str
    seen: str
    likely_cause: str

    def __str__(self) -> str:
        return (f"{self.component} at {self.endpoint}: expected {self.expected}; saw {self.seen}. "
                f"Likely cause: {self.likely_cause}")


@dataclass(frozen=True)
class Target:
    """How this run reaches one service: a base URL, and the login if the service has one."""

    service: str
    url: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    unreachable: Diagnosis | None = None
    """Set when the run could not even open a way to the service (no ready pod, unreadable Secret)."""

    @property
    def auth(self) -> tuple[str, str] | None:
        return (self.username, self.password) if self.username and self.password else None


class CheckFailed(Exception):
    def __init__(self, diagnosis: Diagnosis):
        self.diagnosis = diagnosis
        super().__init__(str(diagnosis))


class Skip(Exception):
    """The check cannot run in this mode; the message says why (and is shown, never hidden)."""


@dataclass(frozen=True)
class CheckResult:
    name: str
    service: str
    status: Status
    seconds: float
    detail: str = ""
    diagnosis: Diagnosis | None = None


@dataclass
class SmokeContext:
    """What a run knows: the platform document, the targets, the deadline per check, a run marker."""

    platform: PlatformDocument
    targets: dict[str, Target]
    timeout: float = 60.0
    cluster: Any = None
    """A KubeCluster in cluster mode; None in direct mode."""
    api_only: bool = False
    """`--api-only`: a cluster whose pods cannot be reached (no kubelet: envtest) — only the checks that
    need nothing but the Kubernetes API run; the others are reported skipped, with that reason."""
    declared_pods: tuple[dict[str, Any], ...] = ()
    """Pods the kit itself declares (the sample tenant's agent pod, the smoke probes), for admission."""
    run_id: str = field(default_factory=lambda: f"cd4ml-smoke-{uuid.uuid4().hex[:10]}")
    session: requests.Session = field(default_factory=requests.Session)
    _memo: dict[str, Any] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _key_locks: dict[str, threading.Lock] = field(default_factory=dict)
    cleanups: list[Callable[[], None]] = field(default_factory=list)

    def target(self, service: str) -> Target:
        if service not in self.targets:
            raise Skip(f"{service} is not part of this platform or was not given an endpoint")
        target = self.targets[service]
        if target.unreachable:
            raise CheckFailed(target.unreachable)
        return target

    def edge(self, consumer: str, provider: str) -> EdgeEntry | None:
        return self.platform.edge(consumer, provider)

    def service(self, name: str) -> ServiceEntry:
        """A service's entry in platform.json (namespace, settings, ...)."""
        found = self.platform.service(name)
        if found is None:
            raise Skip(f"{name} is not part of this platform")
        return found

    def settings(self, kind: type[S]) -> S:
        """The typed settings of the service that has them (GoCDSettings...)."""
        return self.platform.settings(kind)

    @property
    def probe_image(self) -> str:
        """The image probe pods run: MLflow's own (python and the MLflow client), as this stack pulls it
        (through a registry mirror, if set), so probing needs nothing the platform does not pull."""
        from infra.platform.mlflow import IMAGE, MLflowSettings

        mlflow = self.platform.service("mlflow")
        return mlflow.settings.image if mlflow and isinstance(mlflow.settings, MLflowSettings) else IMAGE.ref

    @property
    def sample_tenant(self) -> SampleTenant:
        """Whose agents and namespaces the probe checks use (the first participant, or the single team)."""
        return self.platform.sample_tenant

    def app_edges(self, provider: str) -> list[EdgeEntry]:
        """The sample tenant's model-service edges to `provider`, one per environment."""
        return self.platform.app_edges(provider)

    @property
    def agent_marks(self) -> tuple[dict[str, str], dict[str, str]]:
        """Labels and annotations a probe standing in for the sample tenant's agents carries: those of a
        job of the tenant's own, as the elastic-agent plugin marks it (a workshop's admission policy
        refuses an agent pod of a participant's ServiceAccount without them)."""
        from infra.platform.gocd import own_job_marks

        tenant = self.sample_tenant
        return own_job_marks(tenant.gocd_environment, tenant.pipeline_prefix)

    def once(self, key: str, produce: Callable[[], Any]) -> Any:
        """Run `produce` once per run even when several checks need its result (e.g. one event
        sent to Fluentd, looked for through Elasticsearch, Kibana and Grafana)."""
        with self._lock:
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:  # one lock per key: producing one result may need another (nested keys)
            if key not in self._memo:
                try:
                    self._memo[key] = ("ok", produce())
                except Exception as failure:  # noqa: BLE001 - replayed to every check that needs it
                    self._memo[key] = ("error", failure)
            kind, value = self._memo[key]
        if kind == "error":
            raise value
        return value

    def post(self, target: Target, path: str, **kwargs) -> requests.Response:
        return self.session.post(target.url.rstrip("/") + path, auth=target.auth, timeout=10, **kwargs)


@dataclass(frozen=True)
class Check:
    name: str
    """Stable, greppable: `<service>.<aspect>` or `wire.<consumer>-<provider>`."""
    service: str
    run: Callable[[SmokeContext], str | None]
    """Returns a short note on success; raises CheckFailed or Skip."""
    needs_cluster: bool = False
    api_only: bool = False
    """Needs the Kubernetes API and nothing running: it also runs with `--api-only`."""


def run_check(check: Check, context: SmokeContext) -> CheckResult:
    started = time.perf_counter()
    try:
        if check.needs_cluster and context.cluster is None:
            raise Skip("needs the cluster (direct mode: no cluster access)")
        if context.api_only and not check.api_only:
            raise Skip("needs running pods (--api-only: only what the Kubernetes API answers is checked)")
        note = check.run(context) or ""
        return CheckResult(check.name, check.service, "pass", time.perf_counter() - started, note)
    except Skip as skipped:
        return CheckResult(check.name, check.service, "skip", time.perf_counter() - started, str(skipped))
    except CheckFailed as failed:
        return CheckResult(check.name, check.service, "fail", time.perf_counter() - started,
                           str(failed.diagnosis), failed.diagnosis)
    except Exception as crashed:  # noqa: BLE001 - a check that crashes is a failed check, said plainly
        diagnosis = Diagnosis(check.service, context.targets.get(check.service, Target(check.service, "?")).url,
                              "the check to run", f"{type(crashed).__name__}: {crashed}",
                              "a bug in the check or an unexpected answer; see the detail")
        return CheckResult(check.name, check.service, "fail", time.perf_counter() - started, str(diagnosis),
                           diagnosis)
