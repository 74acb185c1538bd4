"""Cluster mode: reach the platform through the stack's kube context, with no ingress or NodePort.

`KubeCluster` is the kit's only door to the Kubernetes API for smoke checks: it reads credential
Secrets, port-forwards to a ready pod behind a Service (the client library's port-forward, piped
to a local port), asks the API server what a service account may do (SubjectAccessReview), and
runs short-lived probe pods. The API objects are injected, so tests drive it with fakes.
"""

from __future__ import annotations

import base64
import contextlib
import os
import select
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from infra.polling import Observation, poll_until

PROBE_LABELS = {"app.kubernetes.io/part-of": "cd4ml", "cd4ml.dev/smoke-probe": "true"}
PROBE_POD_SECURITY = {"runAsNonRoot": True, "runAsUser": 65532, "runAsGroup": 65532,
                      "seccompProfile": {"type": "RuntimeDefault"}}
PROBE_CONTAINER_SECURITY = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
"""Probes pass the `restricted` Pod Security level of the namespaces they run in."""


class ClusterError(RuntimeError):
    """The cluster could not be used for what was asked; the message says what and where."""


@dataclass
class KubeApis:
    core: Any
    discovery: Any
    authorization: Any
    portforward: Callable[..., Any]
    """kubernetes.stream.portforward, bound to core.connect_get_namespaced_pod_portforward."""
    networking: Any = None


@dataclass(frozen=True)
class KubeTarget:
    """Which cluster to check: a context of the user's kubeconfig, or a kubeconfig of its own (the
    kit's cluster stack hands one over); neither means the current context."""

    context: str | None = None
    kubeconfig: dict[str, Any] | None = None

    def __str__(self) -> str:
        return (f"context {self.context}" if self.context else "the current context") + (
            " of the cluster stack's kubeconfig" if self.kubeconfig else "")


def load_apis(target: KubeTarget | None = None) -> KubeApis:
    """API clients for the target cluster (the current context when None)."""
    from kubernetes import client, config
    from kubernetes.stream import portforward

    target = target or KubeTarget()
    try:
        if target.kubeconfig:
            config.load_kube_config_from_dict(target.kubeconfig, context=target.context)
        else:  # the kubeconfig named now (the client fixes its default location when it is imported)
            config.load_kube_config(config_file=os.environ.get("KUBECONFIG") or None, context=target.context)
    except Exception as failure:  # the client raises ConfigException or plain errors
        raise ClusterError(f"cannot use {target}: {failure}") from None
    core = client.CoreV1Api()
    return KubeApis(core=core, discovery=client.DiscoveryV1Api(), authorization=client.AuthorizationV1Api(),
                    portforward=lambda pod, namespace, port: portforward(
                        core.connect_get_namespaced_pod_portforward, pod, namespace, ports=str(port)),
                    networking=client.NetworkingV1Api())


def probe_pod(namespace: str, name: str, container: dict[str, Any], service_account: str | None = None,
              labels: dict[str, str] | None = None, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    """A smoke probe: one container, non-root, no capabilities, restricted-level, its token only when it
    acts as a service account."""
    env = [{"name": "HOME", "value": "/tmp"}, *container.get("env", [])]
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": {**PROBE_LABELS, **(labels or {})},
                     **({"annotations": annotations} if annotations else {})},
        "spec": {"restartPolicy": "Never", "securityContext": PROBE_POD_SECURITY,
                 "containers": [{"name": "probe", "securityContext": PROBE_CONTAINER_SECURITY,
                                 **container, "env": env}],
                 "automountServiceAccountToken": service_account is not None,
                 **({"serviceAccountName": service_account} if service_account else {})},
    }


class KubeCluster:
    def __init__(self, apis: KubeApis):
        self.apis = apis

    def read_secret(self, namespace: str, name: str) -> dict[str, str]:
        try:
            secret = self.apis.core.read_namespaced_secret(name, namespace)
        except Exception as failure:  # noqa: BLE001 - ApiException and transport errors alike
            raise ClusterError(f"cannot read Secret {namespace}/{name}: {failure}") from None
        return {key: base64.b64decode(value).decode() for key, value in (secret.data or {}).items()}

    def ready_pod_for(self, namespace: str, service: str, port: int) -> tuple[str, int]:
        """A ready pod behind the Service and the container port its `port` maps to."""
        try:
            spec = self.apis.core.read_namespaced_service(service, namespace).spec
            slices = self.apis.discovery.list_namespaced_endpoint_slice(
                namespace, label_selector=f"kubernetes.io/service-name={service}").items
        except Exception as failure:  # noqa: BLE001 - ApiException (404, 403) and transport errors alike
            raise ClusterError(f"cannot read Service {namespace}/{service}: {failure}") from None
        service_port = next((p for p in spec.ports if p.port == port), None)
        if service_port is None:
            raise ClusterError(f"Service {namespace}/{service} has no port {port}")
        for endpoint_slice in slices:
            target = next((p.port for p in endpoint_slice.ports or [] if p.name == service_port.name), None)
            for endpoint in endpoint_slice.endpoints or []:
                ready = endpoint.conditions is None or endpoint.conditions.ready is not False
                if ready and endpoint.target_ref is not None and target:
                    return endpoint.target_ref.name, target
        raise ClusterError(f"no ready pod behind Service {namespace}/{service} port {port}")

    @contextlib.contextmanager
    def forward(self, namespace: str, service: str, port: int) -> Iterator[int]:
        """A local port that reaches the Service's port (through one ready pod) while the block runs."""
        pod, target = self.ready_pod_for(namespace, service, port)
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        stop = threading.Event()

        def serve() -> None:
            while not stop.is_set():
                readable, _, _ = select.select([listener], [], [], 0.1)
                if readable:
                    local, _ = listener.accept()
                    threading.Thread(target=self._pipe, args=(local, pod, namespace, target), daemon=True).start()

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        try:
            yield listener.getsockname()[1]
        finally:
            stop.set()
            thread.join(timeout=2)
            listener.close()

    def _pipe(self, local: socket.socket, pod: str, namespace: str, port: int) -> None:
        forwarded = self.apis.portforward(pod, namespace, port)
        remote = forwarded.socket(port)
        remote.setblocking(True)
        try:
            sockets = [local, remote]
            while True:
                readable, _, _ = select.select(sockets, [], [], 30)
                if not readable:
                    break
                for ready in readable:
                    data = ready.recv(65536)
                    if not data:
                        return
                    (remote if ready is local else local).sendall(data)
        except OSError:
            return
        finally:
            local.close()
            remote.close()

    def can_i(self, service_account: tuple[str, str], verb: str, group: str, resource: str, namespace: str) -> bool:
        from kubernetes import client

        namespace_of_account, name = service_account
        review = client.V1SubjectAccessReview(spec=client.V1SubjectAccessReviewSpec(
            user=f"system:serviceaccount:{namespace_of_account}:{name}",
            groups=["system:serviceaccounts", f"system:serviceaccounts:{namespace_of_account}"],
            resource_attributes=client.V1ResourceAttributes(
                namespace=namespace, verb=verb, group=group, resource=resource)))
        return bool(self.apis.authorization.create_subject_access_review(review).status.allowed)

    def network_policy_names(self, namespace: str) -> set[str]:
        try:
            return {p.metadata.name for p in self.apis.networking.list_namespaced_network_policy(namespace).items}
        except Exception as failure:  # noqa: BLE001 - ApiException and transport errors alike
            raise ClusterError(f"cannot list NetworkPolicies in {namespace}: {failure}") from None

    def refusal(self, pod: dict[str, Any]) -> str | None:
        """Why the API server would refuse this pod (a server-side dry run: admission — Pod Security,
        quotas, LimitRanges, service accounts — decides, nothing is created), or None."""
        try:
            self.apis.core.create_namespaced_pod(pod["metadata"]["namespace"], pod, dry_run="All")
        except Exception as failure:  # noqa: BLE001 - the refusal is the finding
            return str(getattr(failure, "body", None) or failure)[:400]
        return None

    def run_probe(self, namespace: str, name: str, container: dict[str, Any], timeout: float,
                  service_account: str | None = None, labels: dict[str, str] | None = None,
                  keep_until: Callable[[], object] | None = None, annotations: dict[str, str] | None = None) -> str:
        """Run a one-shot pod to completion and return its log; the pod is always deleted, after
        `keep_until()` returns or raises when given (a probe whose log file must still be there when
        Fluentd's tail source next looks). `labels` are the pod labels of the wiring node the probe
        stands in for, so the network policies treat it as that node (platform.json `from_pods`)."""
        pod = probe_pod(namespace, name, container, service_account, labels, annotations)
        self.apis.core.create_namespaced_pod(namespace, pod)
        try:
            def finished() -> Observation[str]:
                phase = self.apis.core.read_namespaced_pod(name, namespace).status.phase
                return Observation(phase in ("Succeeded", "Failed"), phase, f"pod phase {phase}")

            phase = poll_until(finished, what=f"probe pod {namespace}/{name} to finish", timeout=timeout)
            log = self.apis.core.read_namespaced_pod_log(name, namespace)
            if phase != "Succeeded":
                raise ClusterError(f"probe pod {namespace}/{name} failed: {log[-300:]}")
            if keep_until:
                keep_until()
            return log
        finally:
            try:
                self.apis.core.delete_namespaced_pod(name, namespace, grace_period_seconds=0)
            except Exception:  # noqa: BLE001 - already gone is fine
                pass
