"""A real Kubernetes control plane on loopback, the way controller-runtime's envtest runs one: etcd,
kube-apiserver and kube-controller-manager as plain processes (built from the Go module proxy by
tests/envtest/build.sh into ~/.cache/cd4ml/envtest/bin), with TLS, token authentication, RBAC and the
admission plugins a real cluster has (PodSecurity among them). With `nodes`, kube-scheduler and kwok
(sigs.k8s.io/kwok) simulate that many nodes the size of a laptop's kind node: pods are scheduled and
become Running and Ready, Jobs' pods complete, claims get volumes (kwok's own provisioner, the default
StorageClass `kwok-volume`). No kubelet, no containers: objects are stored, admitted and served exactly
as on a cluster; nothing runs.

`ControlPlane` starts, stops (the cluster "gone") and restarts on the same data, and writes a
kubeconfig whose context is `envtest`.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import yaml

CACHE = Path(os.environ.get("CD4ML_ENVTEST_CACHE", Path.home() / ".cache" / "cd4ml" / "envtest"))
BIN = CACHE / "bin"
REQUIRED = ("etcd", "kube-apiserver", "kube-controller-manager")
TOKEN = "cd4ml-envtest-admin-token"
CONTEXT = "envtest"
STAGES = CACHE / "stages"
NODE_CAPACITY = {"cpu": "4", "memory": "8Gi", "pods": "110", "ephemeral-storage": "100Gi"}
"""A laptop's kind node: Docker Desktop's default share of a laptop."""
KWOK_STAGES = ("node/fast", "pod/general", "volume/fast")
"""kwok v0.8.0's kustomize/stage/ sets: nodes Ready at once; pods Running and Ready, Jobs' pods
completing, init containers run; claims provisioned by kwok's own StorageClass."""


def missing_binaries(names: tuple[str, ...] = REQUIRED) -> list[str]:
    return [name for name in names if not (BIN / name).is_file()]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _certificates(directory: Path) -> None:
    """A CA, the API server's serving certificate for 127.0.0.1, and the service-account key pair."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    def key():
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def pem_key(private) -> bytes:
        return private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                     serialization.NoEncryption())

    now = datetime.datetime.now(datetime.UTC)
    ca_key = key()
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cd4ml-envtest-ca")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
          .not_valid_after(now + datetime.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    server_key = key()
    import ipaddress

    server = (x509.CertificateBuilder()
              .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]))
              .issuer_name(ca_name).public_key(server_key.public_key()).serial_number(x509.random_serial_number())
              .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=2))
              .add_extension(x509.SubjectAlternativeName([
                  x509.DNSName("localhost"), x509.DNSName("kubernetes"), x509.DNSName("kubernetes.default.svc"),
                  x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.IPAddress(ipaddress.ip_address("10.0.0.1"))]),
                  critical=False)
              .sign(ca_key, hashes.SHA256()))
    service_accounts = key()
    (directory / "ca.crt").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (directory / "apiserver.crt").write_bytes(server.public_bytes(serialization.Encoding.PEM))
    (directory / "apiserver.key").write_bytes(pem_key(server_key))
    (directory / "sa.key").write_bytes(pem_key(service_accounts))
    (directory / "sa.pub").write_bytes(service_accounts.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    (directory / "tokens.csv").write_text(f'{TOKEN},cd4ml-envtest-admin,1,"system:masters"\n')


@dataclass
class ControlPlane:
    root: Path
    etcd_port: int = field(default_factory=free_port)
    api_port: int = field(default_factory=free_port)
    nodes: int = 0
    capacity: dict[str, str] = field(default_factory=lambda: dict(NODE_CAPACITY))
    """Each simulated node's: a laptop's kind node by default, a cloud machine for a workshop."""
    stages: tuple[Path, ...] = ()
    """More kwok stages (the kit's own: tests/envtest/stages/), beside kwok's node, pod and volume sets.
    Those for custom resources start once their CRD exists: kwok v0.8.0 exits at start on a stage whose
    resource the API server does not serve yet, and a Helm release installs the CRDs mid-`up`."""
    unserved_webhooks: tuple[str, ...] = ()
    """Admission webhooks (by name part) of services that cannot answer here, no container running: their
    configurations are deleted as they appear, so the API server admits what they would have checked
    (cert-manager's, for a published workshop's ClusterIssuer and Certificates). Said where it is used."""
    load_balancers: bool = False
    """Give every LoadBalancer Service an address, as a cloud's controller does (documentation range
    203.0.113.0/24): Helm waits for one before it calls a release with such a Service deployed."""
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.api_port}"

    @property
    def kubeconfig(self) -> Path:
        return self.root / "kubeconfig"

    def start(self, timeout: float = 90.0) -> ControlPlane:
        pki = self.root / "pki"
        if not pki.exists():
            pki.mkdir(parents=True)
            _certificates(pki)
        logs = self.root / "logs"
        logs.mkdir(exist_ok=True)
        peer = free_port()
        self._spawn("etcd", [str(BIN / "etcd"), "--data-dir", str(self.root / "etcd"), "--unsafe-no-fsync",
                             "--listen-client-urls", f"http://127.0.0.1:{self.etcd_port}",
                             "--advertise-client-urls", f"http://127.0.0.1:{self.etcd_port}",
                             "--listen-peer-urls", f"http://127.0.0.1:{peer}",
                             "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
                             "--initial-cluster", f"default=http://127.0.0.1:{peer}"], logs)
        self._spawn("kube-apiserver", [
            str(BIN / "kube-apiserver"), f"--etcd-servers=http://127.0.0.1:{self.etcd_port}",
            "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", f"--secure-port={self.api_port}",
            f"--tls-cert-file={pki / 'apiserver.crt'}", f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--client-ca-file={pki / 'ca.crt'}", f"--token-auth-file={pki / 'tokens.csv'}",
            f"--service-account-key-file={pki / 'sa.pub'}", f"--service-account-signing-key-file={pki / 'sa.key'}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            "--service-cluster-ip-range=10.0.0.0/24", "--authorization-mode=RBAC", "--allow-privileged=true",
            "--enable-priority-and-fairness=false", "--profiling=false"], logs)
        self.kubeconfig.write_text(self.kubeconfig_text())
        self._wait_ready(timeout)
        # Namespaces are finalized, service accounts and their tokens made, garbage collected: what
        # deleting a namespace (every `down`) waits for.
        self._spawn("kube-controller-manager", [
            str(BIN / "kube-controller-manager"), f"--kubeconfig={self.kubeconfig}", "--leader-elect=false",
            f"--service-account-private-key-file={pki / 'sa.key'}", f"--root-ca-file={pki / 'ca.crt'}",
            "--use-service-account-credentials=false", "--secure-port=0",
            "--controllers=*,-nodeipam,-nodelifecycle,-attachdetach,-persistentvolume-expander,"
            "-cloud-node-lifecycle,-ttl,-bootstrapsigner,-tokencleaner"], logs)
        if self.nodes:
            self._simulate_nodes(logs)
        return self

    def _simulate_nodes(self, logs: Path) -> None:
        self._spawn("kube-scheduler", [str(BIN / "kube-scheduler"), f"--kubeconfig={self.kubeconfig}",
                                       "--leader-elect=false", f"--authentication-kubeconfig={self.kubeconfig}",
                                       f"--authorization-kubeconfig={self.kubeconfig}", "--bind-address=127.0.0.1",
                                       f"--secure-port={free_port()}"], logs)
        stages = [str(path) for folder in KWOK_STAGES for path in sorted((STAGES / folder).glob("*.yaml"))
                  if path.name != "storage-class.yaml"]
        self._spawn("kwok", [str(BIN / "kwok"), f"--kubeconfig={self.kubeconfig}", "--manage-all-nodes=false",
                             "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
                             f"--server-address=127.0.0.1:{free_port()}", *(f"--config={stage}" for stage in stages)],
                    logs)
        for stage_file in self.stages:
            threading.Thread(target=self._when_served, args=(stage_file, logs), daemon=True).start()
        if self.unserved_webhooks:
            threading.Thread(target=self._drop_unserved_webhooks, daemon=True).start()
        if self.load_balancers:
            threading.Thread(target=self._assign_load_balancer_addresses, daemon=True).start()
        self.apply([(STAGES / "volume" / "fast" / "storage-class.yaml").read_text()] + [
            f"""apiVersion: v1
kind: Node
metadata:
  name: kwok-node-{index}
  annotations: {{kwok.x-k8s.io/node: fake}}
  labels: {{kubernetes.io/hostname: kwok-node-{index}, kubernetes.io/os: linux, kubernetes.io/arch: amd64,
            type: kwok}}
status:
  allocatable: {self.capacity}
  capacity: {self.capacity}
""" for index in range(self.nodes)])
        # The API server taints every new node not-ready (TaintNodesByCondition); the node lifecycle
        # controller, which would lift it, also evicts from nodes without kubelet heartbeats: it stays
        # off, and the taint is lifted here, once.
        done = subprocess.run(["kubectl", "--kubeconfig", str(self.kubeconfig), "taint", "nodes", "--all",
                               "node.kubernetes.io/not-ready:NoSchedule-"], capture_output=True, text=True)
        if done.returncode != 0 and "not found" not in done.stderr:
            raise RuntimeError(f"could not lift the not-ready taint: {done.stderr[-500:]}")

    def _when_served(self, stage_file: Path, logs: Path) -> None:
        """A kwok for these custom-resource stages, started once the API server serves their group."""
        groups = {doc["spec"]["resourceRef"]["apiGroup"] for doc in yaml.safe_load_all(stage_file.read_text())}
        name = f"kwok-{stage_file.stem}"
        while name not in self.processes and "kube-apiserver" in self.processes:
            served = subprocess.run(["kubectl", "--kubeconfig", str(self.kubeconfig), "api-versions"],
                                    capture_output=True, text=True).stdout.split()
            if groups <= set(served):
                self._spawn(name, [str(BIN / "kwok"), f"--kubeconfig={self.kubeconfig}", "--manage-all-nodes=false",
                                   "--manage-single-node=cd4ml-no-such-node", f"--server-address=127.0.0.1:{free_port()}",
                                   f"--config={stage_file}"], logs)
                time.sleep(5)
                process = self.processes.get(name)
                if process is not None and process.poll() is not None:
                    # Served, but not yet in the OpenAPI document kwok reads: try again.
                    self.processes.pop(name, None)
            time.sleep(1)  # a watcher in a test harness, polling for a CRD another process installs

    def _drop_unserved_webhooks(self) -> None:
        """A watcher in a test harness: delete the webhook configurations no pod here can serve."""
        while "kube-apiserver" in self.processes:
            listed = subprocess.run(["kubectl", "--kubeconfig", str(self.kubeconfig), "get",
                                     "validatingwebhookconfigurations,mutatingwebhookconfigurations", "-o", "name"],
                                    capture_output=True, text=True).stdout.split()
            doomed = [name for name in listed if any(part in name for part in self.unserved_webhooks)]
            if doomed:
                subprocess.run(["kubectl", "--kubeconfig", str(self.kubeconfig), "delete", "--ignore-not-found",
                                *doomed], capture_output=True, text=True)
            time.sleep(1)

    def _assign_load_balancer_addresses(self) -> None:
        """A watcher in a test harness, standing in for a cloud's service controller, and for the ingress
        controller publishing its Service's address on each Ingress it serves (Traefik's
        providers.kubernetesIngress.publishedService, which the kit enables): what the provider's Ingress
        await waits for."""
        given = 0
        while "kube-apiserver" in self.processes:
            addresses = []
            for service in self._listed("services"):
                if service["spec"].get("type") != "LoadBalancer":
                    continue
                address = service.get("status", {}).get("loadBalancer", {}).get("ingress")
                if not address:
                    given += 1
                    address = [{"ip": f"203.0.113.{given % 250 + 1}"}]
                    self._set_status("service", service, address)
                addresses.append(address)
            if addresses:
                for ingress in self._listed("ingresses"):
                    if not ingress.get("status", {}).get("loadBalancer", {}).get("ingress"):
                        self._set_status("ingress", ingress, addresses[0])
            time.sleep(1)

    def _listed(self, kind: str) -> list[dict]:
        out = subprocess.run(["kubectl", "--kubeconfig", str(self.kubeconfig), "get", kind, "-A", "-o", "json"],
                             capture_output=True, text=True).stdout
        return json.loads(out).get("items", []) if out else []

    def _set_status(self, kind: str, item: dict, load_balancer_ingress: list[dict]) -> None:
        status = {"status": {"loadBalancer": {"ingress": load_balancer_ingress}}}
        subprocess.run(["kubectl", "--kubeconfig", str(self.kubeconfig), "-n", item["metadata"]["namespace"], "patch",
                        kind, item["metadata"]["name"], "--subresource=status", "--type=merge", "-p",
                        json.dumps(status)], capture_output=True, text=True)

    def apply(self, manifests: list[str]) -> None:
        done = subprocess.run(["kubectl", "--kubeconfig", str(self.kubeconfig), "apply", "-f", "-"],
                              input="\n---\n".join(manifests), capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"kubectl apply failed: {done.stderr[-1000:]}")

    def kubeconfig_text(self) -> str:
        ca = (self.root / "pki" / "ca.crt").read_bytes()
        import base64

        return (f"apiVersion: v1\nkind: Config\ncurrent-context: {CONTEXT}\n"
                f"clusters:\n- name: {CONTEXT}\n  cluster:\n    server: {self.url}\n"
                f"    certificate-authority-data: {base64.b64encode(ca).decode()}\n"
                f"users:\n- name: {CONTEXT}\n  user:\n    token: {TOKEN}\n"
                f"contexts:\n- name: {CONTEXT}\n  context:\n    cluster: {CONTEXT}\n    user: {CONTEXT}\n")

    def _spawn(self, name: str, command: list[str], logs: Path) -> None:
        with (logs / f"{name}.log").open("ab") as log:
            self.processes[name] = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                                    start_new_session=True)

    def _wait_ready(self, timeout: float) -> None:
        context = ssl.create_default_context(cafile=str(self.root / "pki" / "ca.crt"))
        deadline, pause, last = time.monotonic() + timeout, 0.2, "nothing yet"
        while time.monotonic() < deadline:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise RuntimeError(f"{name} exited with {process.returncode}: "
                                       f"{(self.root / 'logs' / f'{name}.log').read_text()[-2000:]}")
            request = urllib.request.Request(f"{self.url}/readyz", headers={"Authorization": f"Bearer {TOKEN}"})
            try:
                with urllib.request.urlopen(request, context=context, timeout=5) as answer:
                    if answer.status == 200:
                        return
            except OSError as failure:
                last = str(failure)
            time.sleep(pause)
            pause = min(pause * 1.5, 2.0)
        raise TimeoutError(f"kube-apiserver at {self.url} not ready after {timeout:.0f}s; last: {last}")

    def stop(self) -> None:
        """The cluster gone: every process ended (its data kept, so `start` brings it back)."""
        names = [n for n in self.processes if n.startswith("kwok-")]
        for name in (*names, "kwok", "kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd"):
            process = self.processes.pop(name, None)
            if process and process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
