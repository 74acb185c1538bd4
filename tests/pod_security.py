"""The Pod Security Standards' `baseline` and `restricted` rules (kubernetes.io/docs/concepts/security/
pod-security-standards), for pod templates in a plan or a rendered chart. What admission would
reject on a cluster, found offline; the fields checked are the ones the standards name."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

RESTRICTED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
                      "projected", "secret", "name"}
BASELINE_CAPABILITIES = {"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
                         "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"}


def pod_spec(obj: dict[str, Any]) -> dict[str, Any] | None:
    if obj["kind"] == "Pod":
        return obj["spec"]
    if obj["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"):
        return obj["spec"]["template"]["spec"]
    return None


def violations(spec: dict[str, Any], level: str) -> Iterator[str]:
    if level == "privileged":
        return
    containers = spec.get("containers", []) + spec.get("initContainers", [])
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(key):
            yield key
    for volume in spec.get("volumes", []):
        if "hostPath" in volume:
            yield f"hostPath volume {volume['name']}"
    for c in containers:
        sc = c.get("securityContext") or {}
        if sc.get("privileged"):
            yield f"{c['name']}: privileged"
        if any(p.get("hostPort") for p in c.get("ports", [])):
            yield f"{c['name']}: hostPort"
        if set(sc.get("capabilities", {}).get("add", [])) - BASELINE_CAPABILITIES:
            yield f"{c['name']}: capabilities beyond baseline"
    if level != "restricted":
        return
    pod_sc = spec.get("securityContext") or {}
    for volume in spec.get("volumes", []):
        if set(volume) - RESTRICTED_VOLUMES:
            yield f"volume {volume['name']} of type {sorted(set(volume) - RESTRICTED_VOLUMES)}"
    for c in containers:
        sc = c.get("securityContext") or {}
        if sc.get("allowPrivilegeEscalation") is not False:
            yield f"{c['name']}: allowPrivilegeEscalation not false"
        if sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is not True:
            yield f"{c['name']}: runAsNonRoot not true"
        if sc.get("runAsUser", pod_sc.get("runAsUser")) == 0:
            yield f"{c['name']}: runAsUser 0"
        seccomp = (sc.get("seccompProfile") or pod_sc.get("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            yield f"{c['name']}: seccompProfile {seccomp}"
        capabilities = sc.get("capabilities", {})
        if "ALL" not in capabilities.get("drop", []):
            yield f"{c['name']}: capabilities not dropped"
        if set(capabilities.get("add", [])) - {"NET_BIND_SERVICE"}:
            yield f"{c['name']}: capabilities added"
