"""The model's path end to end on a platform `cd4ml up` stood up (users' CI: .github/workflows/e2e-kind.yml).

What a pipeline on the kit's GoCD agents does, without GoCD: the example model repository runs, in
exactly the pod the elastic-agent profile starts (its image, ServiceAccount, labels, environment and
limits, from the platform model), its unit tests, training against the platform's MLflow, the gate,
and `deploy.sh staging` with the kit's ml-app chart as the agents' ServiceAccount; then the model
service answers GET /version and POST /predict, and the prediction's event is found in Elasticsearch,
in the tenant's own index. Every wait has a deadline and says what it last saw.

Run after `make up`:  .venv/bin/python tests/e2e/model_path.py [--stack local] [--timeout 900]
Exit 0 when every step passed, 1 with the failing step's diagnosis.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import sys
import tarfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = REPO_ROOT / "examples" / "model-repo"
SHIPPED = ("model", "service", "tests/unit", "conftest.py", "pytest.ini", "deploy.sh", "requirements.txt")
"""What of the example the agent needs (the integration tests start servers of their own)."""
REPO_MOUNT = "/opt/cd4ml-e2e"
PIPELINE_LABEL = "e2e-1"
SAMPLE = {"age": 0.038, "sex": 0.051, "bmi": 0.062, "bp": 0.022, "s1": -0.044, "s2": -0.035, "s3": -0.043,
          "s4": -0.003, "s5": 0.020, "s6": -0.018}
"""One row of scikit-learn's diabetes set (model/data.py), as a caller would send it."""


class StepFailed(RuntimeError):
    pass


def example_archive() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name in SHIPPED:
            archive.add(EXAMPLE / name, arcname=name,
                        filter=lambda info: None if "__pycache__" in info.name else info)
    return buffer.getvalue()


def pipeline_pod(platform, run_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The elastic agent's pod for the sample tenant (as the plugin would start it) running the
    pipeline's stages, and the ConfigMap that brings the example repository in."""
    gocd = platform.services["gocd"]
    pod = json.loads(json.dumps(gocd.embedded[0]))  # the profile's pod, placeholders filled in
    name = f"cd4ml-e2e-pipeline-{run_id}"
    pod["metadata"]["name"] = name
    pod["spec"]["restartPolicy"] = "Never"
    container = pod["spec"]["containers"][0]
    container["command"] = ["bash", "-euo", "pipefail", "-c", " && ".join([
        "mkdir -p /tmp/repo", f"tar -xzf {REPO_MOUNT}/repo.tar.gz -C /tmp/repo", "cd /tmp/repo",
        "python3 -m pytest tests/unit -q", "python3 -m model.train --out out",
        "python3 -m model.gate --model out/model.json", f"GO_PIPELINE_LABEL={PIPELINE_LABEL} bash deploy.sh staging"])]
    container["env"] = [*container.get("env", []), {"name": "HOME", "value": "/tmp"}]
    container["volumeMounts"] = [{"name": "model-repo", "mountPath": REPO_MOUNT, "readOnly": True}]
    pod["spec"]["volumes"] = [{"name": "model-repo", "configMap": {"name": name}}]
    config_map = {"apiVersion": "v1", "kind": "ConfigMap",
                  "metadata": {"name": name, "namespace": pod["metadata"]["namespace"],
                               "labels": {"app.kubernetes.io/part-of": "cd4ml"}},
                  "binaryData": {"repo.tar.gz": base64.b64encode(example_archive()).decode()}}
    return pod, config_map


def wait(look, what: str, timeout: float):
    from infra.polling import WaitTimeout, poll_until

    try:
        return poll_until(look, what=what, timeout=timeout, max_interval=10.0)
    except WaitTimeout as timed_out:
        raise StepFailed(str(timed_out)) from None


def http(method: str, url: str, body: Any = None, auth: tuple[str, str] | None = None) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    if auth:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
    request = urllib.request.Request(url, method=method, headers=headers,
                                     data=json.dumps(body).encode() if body is not None else None)
    try:
        with urllib.request.urlopen(request, timeout=15) as answer:
            return answer.status, json.loads(answer.read() or b"null")
    except urllib.error.HTTPError as refused:
        return refused.code, refused.read().decode(errors="replace")[:300]


def run(stack: str, timeout: float) -> None:
    from kubernetes import client
    from kubernetes.utils import create_from_dict

    from infra.config import load_stack, project_dir
    from infra.platform import apps, elasticsearch
    from infra.platform.build import build_platform
    from infra.polling import Observation
    from infra.smoke.cluster import KubeCluster, KubeTarget, load_apis

    config = load_stack(project_dir() / "stacks", stack)
    platform = build_platform(config, stack)
    tenant = platform.tenants[0]
    staging = dict(tenant.environments)["staging"]
    cluster = KubeCluster(load_apis(KubeTarget(context=config.kube_context or None)))
    core = cluster.apis.core
    run_id = uuid.uuid4().hex[:6]
    pod, config_map = pipeline_pod(platform, run_id)
    namespace, name = pod["metadata"]["namespace"], pod["metadata"]["name"]

    print(f" • pipeline pod {namespace}/{name}: tests, train, gate, deploy.sh staging (as {pod['spec']['serviceAccountName']})")
    api_client = client.ApiClient()
    create_from_dict(api_client, config_map)
    create_from_dict(api_client, pod)
    try:
        def finished() -> Observation[str]:
            phase = core.read_namespaced_pod(name, namespace).status.phase
            return Observation(phase in ("Succeeded", "Failed"), phase, f"pod phase {phase}")

        phase = wait(finished, f"pipeline pod {namespace}/{name} to finish", timeout)
        log = core.read_namespaced_pod_log(name, namespace)
        print("\n".join(f"   | {line}" for line in log.splitlines()[-40:]))
        if phase != "Succeeded":
            raise StepFailed(f"the pipeline pod ended {phase}: see its log above")
    finally:
        core.delete_namespaced_pod(name, namespace, grace_period_seconds=0)
        core.delete_namespaced_config_map(name, namespace)
    print(" ✓ trained in MLflow, gated, deployed to staging")

    service = apps.ml_app_endpoint(staging)
    with cluster.forward(staging, service.service, service.port) as port:
        status, version = http("GET", f"http://127.0.0.1:{port}/version")
        if status != 200 or version.get("pipeline_label") != PIPELINE_LABEL:
            raise StepFailed(f"GET /version on {staging}/{service.service}: HTTP {status} {version}")
        status, answer = http("POST", f"http://127.0.0.1:{port}/predict", {"features": SAMPLE})
        if status != 200:
            raise StepFailed(f"POST /predict on {staging}/{service.service}: HTTP {status} {answer}")
    print(f" ✓ model {version['model_name']} v{version['model_version']} serves: /version and /predict answer")

    es = platform.services["elasticsearch"]
    login = cluster.read_secret(es.credentials.namespace, es.credentials.secret)
    index = f"{elasticsearch.EVENT_INDEX_PREFIX}-{tenant.name}-*"
    query = {"query": {"bool": {"filter": [{"term": {"pipeline_label": PIPELINE_LABEL}},
                                           {"term": {"environment": "staging"}}]}}}
    with cluster.forward(es.namespace, es.endpoint.service, es.endpoint.port) as port:
        def found() -> Observation[int]:
            status, result = http("POST", f"http://127.0.0.1:{port}/{index}/_search", query,
                                  auth=(login[es.credentials.username_key], login[es.credentials.password_key]))
            hits = result.get("hits", {}).get("total", {}).get("value", 0) if isinstance(result, dict) else 0
            return Observation(status == 200 and hits > 0, hits, f"HTTP {status}, {hits} hits")

        hits = wait(found, f"the prediction event in {index} (Fluentd flushes every few seconds)", 180)
    print(f" ✓ the prediction's event is in {index} ({hits} hit(s))")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack", default="local")
    parser.add_argument("--timeout", type=float, default=900.0, help="deadline of the pipeline pod, seconds")
    options = parser.parse_args()
    sys.path.insert(0, str(REPO_ROOT))
    started = time.monotonic()
    try:
        run(options.stack, options.timeout)
    except StepFailed as failed:
        print(f" ✗ {failed}", file=sys.stderr)
        return 1
    print(f"model path passed in {time.monotonic() - started:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
