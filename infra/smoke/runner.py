"""Runs the checks concurrently, then cleans up what they left, and reports."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse
from xml.etree import ElementTree

from infra.config import SERVICE_NAMES
from infra.document import PlatformDocument
from infra.platform.model import Platform
from infra.smoke.checks import ALL_CHECKS
from infra.smoke.core import Check, CheckResult, Diagnosis, SmokeContext, Target, run_check

if TYPE_CHECKING:
    from infra.smoke.cluster import KubeTarget


class SmokeUsageError(ValueError):
    """A smoke invocation that cannot run (unknown service, malformed URL); says what is allowed."""


def parse_endpoints(pairs: Iterable[str]) -> dict[str, str]:
    endpoints = {}
    for pair in pairs:
        service, sep, url = pair.partition("=")
        if not sep or service not in SERVICE_NAMES:
            raise SmokeUsageError(f"--endpoint {pair!r}: expected SERVICE=URL with SERVICE one of "
                                  f"{', '.join(SERVICE_NAMES)}")
        parsed = urlparse(url)
        if parsed.scheme not in ("http", "https", "tcp") or not parsed.hostname:
            raise SmokeUsageError(f"--endpoint {pair!r}: {url!r} is not an http(s):// or tcp:// URL")
        endpoints[service] = url
    return endpoints


def direct_targets(endpoints: Mapping[str, str], environ: Mapping[str, str] = os.environ) -> dict[str, Target]:
    """Targets for services reached at given URLs; logins from CD4ML_<SERVICE>_USERNAME/_PASSWORD
    (never from flags, which end up in shell history and process lists)."""
    targets = {}
    for service, url in endpoints.items():
        prefix = f"CD4ML_{service.upper()}"
        targets[service] = Target(service, url, environ.get(f"{prefix}_USERNAME"), environ.get(f"{prefix}_PASSWORD"))
    return targets


def cluster_targets(platform: PlatformDocument, cluster, forwards: ExitStack) -> dict[str, Target]:
    """Targets through port-forwards opened on `forwards`, with logins read from the services' Secrets.
    A service that cannot be reached this way gets a target that fails its checks with the reason."""
    from infra.smoke.cluster import ClusterError

    targets = {}
    for service in platform.services:
        name, endpoint_url = service.name, service.url
        if endpoint_url is None or service.service is None or service.port is None:
            continue  # nobody connects to it
        try:
            port = forwards.enter_context(cluster.forward(service.namespace, service.service, service.port))
            username = password = None
            if service.credentials_secret and service.credentials_keys:
                namespace, secret = service.credentials_secret.split("/", 1)
                data = cluster.read_secret(namespace, secret)
                keys = service.credentials_keys
                username, password = data.get(keys["username"]), data.get(keys["password"])
        except ClusterError as failure:
            targets[name] = Target(name, endpoint_url, unreachable=Diagnosis(
                name, f"port-forward to {service.namespace}/{service.service}:{service.port}",
                "a ready pod to forward to and a readable login Secret", str(failure),
                f"{name} is not running (kubectl -n {service.namespace} get pods) or the kit did not create it"))
            continue
        scheme = urlparse(endpoint_url).scheme
        targets[name] = Target(name, f"{scheme}://127.0.0.1:{port}{urlparse(endpoint_url).path}", username, password)
    return targets


def run_in_cluster(platform: PlatformDocument, cluster, checks: Iterable[Check], timeout: float, api_only: bool = False,
                   declared_pods: tuple[dict, ...] = ()) -> list[CheckResult]:
    """Through port-forwards to the services; with `api_only`, through the Kubernetes API alone (no
    forward is opened: nothing runs behind the Services)."""
    with ExitStack() as forwards:
        targets = {} if api_only else cluster_targets(platform, cluster, forwards)
        context = SmokeContext(platform=platform, targets=targets, timeout=timeout, cluster=cluster,
                               api_only=api_only, declared_pods=declared_pods)
        return run_checks(context, checks)


def declared_pods(platform: Platform, document: PlatformDocument) -> tuple[dict, ...]:
    """The pods the kit declares itself, for the admission check: the sample tenant's agent pod (as
    the elastic-agent plugin starts it) and a smoke probe in each namespace probes run in, labelled as
    the wiring node it stands in for."""
    from infra.smoke.cluster import probe_pod
    from infra.smoke.core import SmokeContext

    pods = []
    if "gocd" in platform.services and platform.services["gocd"].embedded:
        pods.append(platform.services["gocd"].embedded[0])
    context = SmokeContext(platform=document, targets={})
    tenant = context.sample_tenant
    probe = {"image": context.probe_image, "command": ["python", "-c", "pass"],
             "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"cpu": "100m", "memory": "64Mi"}}}
    seen = set()
    for edge in document.wiring:
        node = edge.consumer
        if node != tenant.agents_node and not (node.startswith("app:") and edge in context.app_edges(edge.provider)):
            continue
        key = (edge.consumer_namespace, tuple(sorted((edge.consumer_pods or {}).items())))
        if key in seen:
            continue
        seen.add(key)
        pods.append(probe_pod(edge.consumer_namespace, f"cd4ml-smoke-admission-{len(seen)}", probe,
                              labels=edge.consumer_pods))
    return tuple(pods)


def smoke_run(stack: str, endpoints: Iterable[str], only: Iterable[str], timeout: float,
              checks: Iterable[str] | None = None, kube: KubeTarget | None = None,
              api_only: bool = False) -> list[CheckResult]:
    """The whole smoke run of one stack: direct mode when endpoints are given, else cluster mode
    through `kube` (the cluster the stack runs on; by default its configured context, or the
    current one); `checks` narrows it to those names (`cd4ml status`).
    Raises ConfigError, SmokeUsageError or ClusterError."""
    from infra.config import load_stack, project_dir
    from infra.platform.build import build_platform
    from infra.smoke.cluster import KubeCluster, KubeTarget, load_apis

    config = load_stack(project_dir() / "stacks", stack)
    model = build_platform(config, stack)
    platform = PlatformDocument.of(model)
    names = set(checks) if checks is not None else None
    checks = tuple(c for c in select(only) if names is None or c.name in names)
    endpoints = list(endpoints)
    if endpoints:
        context = SmokeContext(platform=platform, targets=direct_targets(parse_endpoints(endpoints)), timeout=timeout)
        return run_checks(context, checks)
    return run_in_cluster(platform, KubeCluster(load_apis(kube or KubeTarget(context=config.kube_context or None))),
                          checks, timeout, api_only=api_only, declared_pods=declared_pods(model, platform))


def select(only: Iterable[str] = ()) -> tuple[Check, ...]:
    wanted = set(only)
    unknown = wanted - set(SERVICE_NAMES)
    if unknown:
        raise SmokeUsageError(f"--only {', '.join(sorted(unknown))}: not a service; "
                              f"services: {', '.join(SERVICE_NAMES)}")
    return tuple(c for c in ALL_CHECKS if not wanted or c.service in wanted)


def run_checks(context: SmokeContext, checks: Iterable[Check]) -> list[CheckResult]:
    checks = list(checks)
    try:
        with ThreadPoolExecutor(max_workers=max(1, min(8, len(checks)))) as pool:
            return list(pool.map(lambda check: run_check(check, context), checks))
    finally:
        for cleanup in reversed(context.cleanups):
            try:
                cleanup()
            except Exception:  # noqa: BLE001 - a failed cleanup must not hide the results
                pass


def failed(results: Iterable[CheckResult]) -> bool:
    return any(r.status == "fail" for r in results)


def write_json(results: list[CheckResult], path: Path) -> None:
    path.write_text(json.dumps([{
        "name": r.name, "service": r.service, "status": r.status, "seconds": round(r.seconds, 3),
        "detail": r.detail, "diagnosis": r.diagnosis.__dict__ if r.diagnosis else None,
    } for r in results], indent=2) + "\n")


def write_junit(results: list[CheckResult], path: Path) -> None:
    suite = ElementTree.Element("testsuite", name="cd4ml-smoke", tests=str(len(results)),
                                failures=str(sum(r.status == "fail" for r in results)),
                                skipped=str(sum(r.status == "skip" for r in results)),
                                time=f"{sum(r.seconds for r in results):.3f}")
    for result in results:
        case = ElementTree.SubElement(suite, "testcase", classname=f"cd4ml.{result.service}", name=result.name,
                                      time=f"{result.seconds:.3f}")
        if result.status == "fail":
            ElementTree.SubElement(case, "failure", message=result.detail[:200]).text = result.detail
        elif result.status == "skip":
            ElementTree.SubElement(case, "skipped", message=result.detail)
    ElementTree.ElementTree(suite).write(path, encoding="unicode", xml_declaration=True)
