"""A Job that runs one of the kit's `infra.configure` modules in-cluster, against a service's API.

Its code and the desired configuration travel in a ConfigMap mounted over a stock Python image, so
nothing has to be built. The Job's name carries a digest of both: the same desired state is the
same Job (Pulumi sees no change and nothing runs), a changed one is a new Job the provider awaits.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from infra.paths import REPO_ROOT
from infra.platform.kit_images import PYTHON_IMAGE
from infra.platform.model import PART_OF, Image, Labels, Resources, SecretRef

CODE_ROOT = "/opt/cd4ml"
CREDENTIALS_ROOT = "/etc/cd4ml/credentials"
DESIRED_FILE = "desired.json"
SHARED_MODULES = ("infra/__init__.py", "infra/polling.py",
                  "infra/configure/__init__.py", "infra/configure/api.py")
"""What every configure module may import besides the standard library (a test runs the mounted
set in an isolated interpreter to prove it)."""
JOB_RESOURCES = Resources(50, 64, 500, 128)
AWAIT_CONDITION = "condition=Complete"


def job_pods(module: str) -> Labels:
    """The labels of a configure Job's pod: what its network policy selects."""
    return (("app.kubernetes.io/component", f"{module}-configure"),)


def module_files(module: str) -> tuple[str, ...]:
    """Repository paths mounted for `infra.configure.<module>`: the shared ones, the service's API
    description (`infra/upstream/<module>.py`) when there is one, and the module."""
    upstream = f"infra/upstream/{module}.py"
    described = ("infra/upstream/__init__.py", upstream) if (REPO_ROOT / upstream).exists() else ()
    return SHARED_MODULES + described + (f"infra/configure/{module}.py",)


def _config_key(path: str) -> str:
    return path.replace("/", "__")


def configure_job(*, name: str, namespace: str, module: str, desired: dict[str, Any],
                  env: dict[str, str], secret_env: dict[str, SecretRef], timeout_seconds: int,
                  image: Image = PYTHON_IMAGE, secret_files: tuple[tuple[str, str], ...] = (),
                  labels: dict[str, str] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(ConfigMap, Job) that run `python -m infra.configure.<module> desired.json` once; each
    (Secret, directory) of `secret_files` is mounted read-only, one file per key."""
    files = {path: (REPO_ROOT / path).read_text(encoding="utf-8") for path in module_files(module)}
    desired_text = json.dumps(desired, indent=2, sort_keys=True)
    data = {_config_key(path): text for path, text in files.items()} | {DESIRED_FILE: desired_text}
    digest = hashlib.sha256(json.dumps([data, env, {k: str(v) for k, v in secret_env.items()}, secret_files],
                                       sort_keys=True).encode()).hexdigest()[:10]
    all_labels = {**PART_OF, **dict(job_pods(module)), **(labels or {})}
    config_map = {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": f"{name}-{digest}", "namespace": namespace, "labels": all_labels},
        "data": data,
    }
    container_env = [{"name": k, "value": v} for k, v in env.items()]
    # Credentials as files from the Secret, not env vars (which leak into `describe` output and child
    # processes); `<NAME>_FILE` tells the module where (infra/configure/api.py run_main).
    credential_secrets = sorted({ref.name for ref in secret_env.values()})
    container_env += [{"name": f"{k}_FILE", "value": f"{CREDENTIALS_ROOT}/{ref.name}/{ref.key}"}
                      for k, ref in secret_env.items()]
    container_env += [{"name": "PYTHONPATH", "value": CODE_ROOT}, {"name": "PYTHONDONTWRITEBYTECODE", "value": "1"},
                      {"name": "PYTHONUNBUFFERED", "value": "1"}]
    items = [{"key": _config_key(path), "path": path} for path in files] + [{"key": DESIRED_FILE, "path": DESIRED_FILE}]
    job = {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {
            "name": f"{name}-{digest}", "namespace": namespace, "labels": all_labels,
            # The provider awaits completion against this deadline; a failed run fails `up` with the Job's log.
            "annotations": {"pulumi.com/waitFor": AWAIT_CONDITION, "pulumi.com/timeoutSeconds": str(timeout_seconds)},
        },
        "spec": {
            "backoffLimit": 2,
            "activeDeadlineSeconds": timeout_seconds,
            "template": {
                "metadata": {"labels": all_labels},
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,
                    "securityContext": {"runAsNonRoot": True, "runAsUser": 65532, "runAsGroup": 65532,
                                        "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [{
                        "name": "configure",
                        "image": image.ref,
                        "command": ["python", "-m", f"infra.configure.{module}", f"{CODE_ROOT}/{DESIRED_FILE}"],
                        "env": container_env,
                        "resources": JOB_RESOURCES.as_k8s(),
                        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                            "capabilities": {"drop": ["ALL"]}},
                        "volumeMounts": [{"name": "code", "mountPath": CODE_ROOT, "readOnly": True}] + [
                            {"name": f"secret-{i}", "mountPath": path, "readOnly": True}
                            for i, (_, path) in enumerate(secret_files)] + [
                            {"name": f"credentials-{i}", "mountPath": f"{CREDENTIALS_ROOT}/{secret}", "readOnly": True}
                            for i, secret in enumerate(credential_secrets)],
                    }],
                    "volumes": [{"name": "code", "configMap": {"name": f"{name}-{digest}", "items": items}}] + [
                        {"name": f"secret-{i}", "secret": {"secretName": secret}}
                        for i, (secret, _) in enumerate(secret_files)] + [
                        {"name": f"credentials-{i}", "secret": {"secretName": secret, "items": [
                            {"key": key, "path": key} for key in sorted({r.key for r in secret_env.values()
                                                                        if r.name == secret})]}}
                        for i, secret in enumerate(credential_secrets)],
                },
            },
        },
    }
    return config_map, job


def mounted_tree(config_map: dict[str, Any], job: dict[str, Any]) -> dict[str, str]:
    """What the container sees under CODE_ROOT: path -> text (for tests that run it)."""
    items = job["spec"]["template"]["spec"]["volumes"][0]["configMap"]["items"]
    return {item["path"]: config_map["data"][item["key"]] for item in items}
