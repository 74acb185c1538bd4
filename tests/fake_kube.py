"""A fake Kubernetes API at the client boundary (the kubernetes package's API objects and its
port-forward), standing in for a cluster that runs the stand-in platform.

- Services resolve to "pods" that are the stand-ins' real TCP ports: port-forward pipes real bytes.
- Probe pods "run" their command locally, with in-cluster DNS names mapped to the stand-ins, and the
  Fluentd DaemonSet is simulated by shipping their output to the Elasticsearch stand-in.
- SubjectAccessReviews are answered from a set of (service account, namespace) grants.
Every call is recorded, so tests can assert on what would have been sent.
"""

from __future__ import annotations

import base64
import datetime
import json
import os
import socket
import subprocess
import sys
import threading
from types import SimpleNamespace as Obj
from typing import Any

import requests

from infra.platform.elasticsearch import CONTAINER_LOG_FIELD, LOG_INDEX_PREFIX
from infra.platform.fluentd import TAIL_REFRESH_SECONDS
from infra.smoke.cluster import KubeApis


class FakeForward:
    def __init__(self, host: str, port: int):
        self.ours, theirs = socket.socketpair()
        upstream = socket.create_connection((host, port))
        pumps = [threading.Thread(target=_pump, args=(theirs, upstream), daemon=True),
                 threading.Thread(target=_pump, args=(upstream, theirs), daemon=True)]
        for pump in pumps:
            pump.start()
        threading.Thread(target=_close_when_done, args=(pumps, theirs, upstream), daemon=True).start()

    def socket(self, _port: int) -> socket.socket:
        return self.ours


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        try:
            sink.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def _close_when_done(pumps: list[threading.Thread], *sockets: socket.socket) -> None:
    """The forward's own ends, closed once both directions are done (the client closes `ours`)."""
    for pump in pumps:
        pump.join()
    for sock in sockets:
        sock.close()


class FakeCluster:
    def __init__(self, platform_document: dict, backends: dict[str, str], secrets: dict[tuple[str, str], dict],
                 grants: set[tuple[str, str]], es_for_logs: tuple[str, tuple[str, str]] | None,
                 dns: dict[str, str], configmaps: dict[tuple[str, str], dict[str, str]] | None = None):
        """backends: service name -> 'host:port' of its stand-in; dns: in-cluster URL or host:port -> local one;
        configmaps: (namespace, name) -> data, for probes' envFrom."""
        self.calls: list[tuple[str, Any]] = []
        self.services = {s["service"]: s for s in platform_document["services"] if s["service"]}
        self.backends, self.secrets, self.grants, self.dns = backends, secrets, grants, dns
        self.es_for_logs = es_for_logs
        self.pods: dict[tuple[str, str], dict] = {}
        self.ship_container_logs = True
        self.tail_refresh_seconds = TAIL_REFRESH_SECONDS / 10
        """The kit's in_tail refresh_interval, on the fake's clock (a tenth of real time)."""
        self.configmaps = configmaps or {}
        self.namespace_dns: dict[str, dict[str, str]] = {}
        """Per-namespace overrides, e.g. a network policy that blocks one namespace's way to a service."""
        self.network_policies = {ns: set(names) for ns, names in platform_document.get("network_policies", {}).items()}
        """What `up` created: the plan's policies (a fault deletes some)."""
        self.pod_security = dict(platform_document.get("pod_security", {}))
        """Each namespace's enforced Pod Security level, which the fake's admission applies (tests/pod_security.py)."""

    # -- CoreV1Api ---------------------------------------------------------------------------------
    def read_namespaced_secret(self, name: str, namespace: str):
        self.calls.append(("read_secret", (namespace, name)))
        if (namespace, name) not in self.secrets:
            raise RuntimeError(f"(404) secrets {name!r} not found")
        data = {k: base64.b64encode(v.encode()).decode() for k, v in self.secrets[(namespace, name)].items()}
        return Obj(data=data)

    def read_namespaced_service(self, name: str, namespace: str):
        if name not in self.services:
            raise RuntimeError(f"(404) services {name!r} not found")
        service = self.services[name]
        return Obj(spec=Obj(ports=[Obj(port=service["port"], name="main")]))

    def list_namespaced_network_policy(self, namespace: str):
        return Obj(items=[Obj(metadata=Obj(name=name)) for name in sorted(self.network_policies.get(namespace, ()))])

    def create_namespaced_pod(self, namespace: str, body: dict, dry_run: str | None = None):
        if dry_run:  # admission only: the namespace's Pod Security level, as the API server enforces it
            from pod_security import violations

            self.calls.append(("dry_run_pod", body))
            found = list(violations(body["spec"], self.pod_security.get(namespace, "restricted")))
            if found:
                raise RuntimeError(f"(403) pods {body['metadata']['name']!r} is forbidden: violates PodSecurity "
                                   f"{self.pod_security.get(namespace)!r}: {'; '.join(found)}")
            return Obj(metadata=Obj(name=body["metadata"]["name"]))
        self.calls.append(("create_pod", body))
        container = body["spec"]["containers"][0]
        namespace_of_pod = body["metadata"]["namespace"]
        env: dict[str, str] = {}
        for source in container.get("envFrom", []):
            env.update(self.configmaps[(namespace_of_pod, source["configMapRef"]["name"])])
        for variable in container.get("env", []):
            if "valueFrom" in variable:  # what the kubelet does: the key of a Secret in the pod's namespace
                ref = variable["valueFrom"]["secretKeyRef"]
                env[variable["name"]] = self.secrets[(namespace_of_pod, ref["name"])][ref["key"]]
            else:
                env[variable["name"]] = variable["value"]
        dns = {**self.dns, **self.namespace_dns.get(namespace_of_pod, {})}
        env = {k: dns.get(v, v) for k, v in env.items()}
        if "FLUENTD_HOST" in env:  # in-cluster DNS: the forward Service's host:port -> the stand-in
            host, _, port = dns.get(f"{env['FLUENTD_HOST']}:{env['FLUENTD_PORT']}", "").partition(":")
            if host:
                env["FLUENTD_HOST"], env["FLUENTD_PORT"] = host, port
        command = container["command"]
        if command[0] == "python":
            command = [sys.executable, *command[1:]]
        result = subprocess.run(command, capture_output=True, text=True, env={**os.environ, **env}, timeout=120)
        log = result.stdout + result.stderr
        self.pods[(namespace, body["metadata"]["name"])] = {
            "phase": "Succeeded" if result.returncode == 0 else "Failed", "log": log}
        if self.ship_container_logs and self.es_for_logs and result.returncode == 0:
            pod = (namespace, body["metadata"]["name"])
            timer = threading.Timer(self.tail_refresh_seconds, self._tail, (pod, result.stdout))
            timer.daemon = True
            timer.start()

    def _tail(self, pod: tuple[str, str], stdout: str) -> None:
        """Fluentd's tail source finds a container's log file on its next scan, refresh_interval after
        the file appeared at worst (in_tail.rb l.286): a pod deleted before then is never read. Its
        lines are shipped as the kit's `cri` parser records them (the field CONTAINER_LOG_FIELD)."""
        if pod not in self.pods:
            return  # deleted before the scan: its lines are never read
        url, auth = self.es_for_logs
        index = f"{LOG_INDEX_PREFIX}-{datetime.date.today():%Y.%m.%d}"
        lines = "".join(json.dumps({"index": {"_index": index}}) + "\n"
                        + json.dumps({"stream": "stdout", "logtag": "F", CONTAINER_LOG_FIELD: line}) + "\n"
                        for line in stdout.splitlines())
        if lines:
            requests.post(f"{url}/_bulk", data=lines, auth=auth, timeout=5,
                          headers={"Content-Type": "application/x-ndjson"})

    def read_namespaced_pod(self, name: str, namespace: str):
        return Obj(status=Obj(phase=self.pods[(namespace, name)]["phase"]))

    def read_namespaced_pod_log(self, name: str, namespace: str):
        return self.pods[(namespace, name)]["log"]

    def delete_namespaced_pod(self, name: str, namespace: str, grace_period_seconds: int = 30):
        self.calls.append(("delete_pod", (namespace, name)))
        self.pods.pop((namespace, name), None)

    # -- DiscoveryV1Api ----------------------------------------------------------------------------
    def list_namespaced_endpoint_slice(self, namespace: str, label_selector: str):
        service = label_selector.split("=", 1)[1]
        if service not in self.backends:
            return Obj(items=[])
        _, port = self.backends[service].rsplit(":", 1)
        endpoint = Obj(conditions=Obj(ready=True), target_ref=Obj(name=f"{service}-pod-0"))
        return Obj(items=[Obj(ports=[Obj(name="main", port=int(port))], endpoints=[endpoint])])

    # -- AuthorizationV1Api ------------------------------------------------------------------------
    def create_subject_access_review(self, review):
        attributes = review.spec.resource_attributes
        self.calls.append(("access_review", (review.spec.user, attributes.verb, attributes.resource,
                                             attributes.namespace)))
        return Obj(status=Obj(allowed=(review.spec.user, attributes.namespace) in self.grants))

    # -- kubernetes.stream.portforward -------------------------------------------------------------
    def portforward(self, pod: str, namespace: str, port: int) -> FakeForward:
        self.calls.append(("portforward", (namespace, pod, port)))
        service = pod.removesuffix("-pod-0")
        host, _ = self.backends[service].rsplit(":", 1)
        return FakeForward(host, port)

    def apis(self) -> KubeApis:
        return KubeApis(core=self, discovery=self, authorization=self, portforward=self.portforward, networking=self)
