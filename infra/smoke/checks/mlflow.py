"""MLflow: healthy, serving its REST API, and able to record a run with a metric and an artifact
(through the server's artifact proxy, as pipeline agents do). The run is deleted afterwards."""

from __future__ import annotations

import time

from infra.platform.apps import ENDPOINTS_CONFIGMAP
from infra.smoke.core import Check, CheckFailed, Diagnosis, Skip, SmokeContext, Target
from infra.smoke.http import call, json_of

EXPERIMENT = "cd4ml-smoke"
"""The admin's smoke runs live here; the agents' probe writes where the agents may: their tenant's
experiment. Each run is deleted after its check."""
API = "/api/2.0/mlflow"


def login_env(edge: dict) -> list[dict]:
    """The consumer's MLflow login as its pods get it: env from the Secret its wiring edge names."""
    if not (edge and edge.credentials_secret):
        return []
    secret = edge.credentials_secret.split("/", 1)[1]
    return [{"name": f"MLFLOW_TRACKING_{key.upper()}", "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}
            for key in ("username", "password")]


def health(context: SmokeContext) -> str:
    mlflow = context.target("mlflow")
    response = call(context, mlflow, "GET", "/health", expect="HTTP 200 OK")
    if response.text.strip() != "OK":
        raise CheckFailed(Diagnosis("mlflow", f"{mlflow.url}/health", "OK", response.text[:120],
                                    "something other than MLflow answers at this URL"))
    return "healthy"


def rest_api(context: SmokeContext) -> str:
    mlflow = context.target("mlflow")
    expect = "a list of experiments"
    response = call(context, mlflow, "POST", f"{API}/experiments/search", expect=expect,
                    json={"max_results": 10}, statuses=(200, 403))
    if response.status_code == 403:
        raise CheckFailed(Diagnosis(
            "mlflow", f"POST {mlflow.url}{API}/experiments/search", expect, f"HTTP 403: {response.text[:120]}",
            "MLflow rejected the Host header: add this host name to the chart's serverAllowedHosts"
            if "Host header" in response.text else "MLflow authentication refused this client"))
    body = json_of(response, mlflow, expect)
    return f"{len(body.get('experiments', []))} experiment(s) visible"


def _experiment_id(context: SmokeContext, mlflow: Target) -> str:
    expect = f"experiment {EXPERIMENT}"
    found = call(context, mlflow, "GET", f"{API}/experiments/get-by-name", expect=expect,
                 params={"experiment_name": EXPERIMENT}, statuses=(200, 404))
    if found.status_code == 200:
        experiment = json_of(found, mlflow, expect)["experiment"]
        if experiment.get("lifecycle_stage") == "active":
            return experiment["experiment_id"]
        call(context, mlflow, "POST", f"{API}/experiments/restore", expect="restored experiment",
             json={"experiment_id": experiment["experiment_id"]})
        return experiment["experiment_id"]
    created = call(context, mlflow, "POST", f"{API}/experiments/create", expect=expect, json={"name": EXPERIMENT})
    return json_of(created, mlflow, expect)["experiment_id"]


def run_with_metric_and_artifact(context: SmokeContext) -> str:
    mlflow = context.target("mlflow")
    experiment_id = _experiment_id(context, mlflow)
    expect = "a new run"
    run = json_of(call(context, mlflow, "POST", f"{API}/runs/create", expect=expect,
                       json={"experiment_id": experiment_id, "run_name": context.run_id,
                             "start_time": int(time.time() * 1000)}), mlflow, expect)["run"]["info"]
    run_id = run["run_id"]
    context.cleanups.append(lambda: context.post(mlflow, f"{API}/runs/delete", json={"run_id": run_id}))
    call(context, mlflow, "POST", f"{API}/runs/log-metric", expect="metric logged",
         json={"run_id": run_id, "key": "smoke", "value": 1.0, "timestamp": int(time.time() * 1000), "step": 0})
    artifact_uri = run.get("artifact_uri", "")
    if not artifact_uri.startswith("mlflow-artifacts:/"):
        raise CheckFailed(Diagnosis(
            "mlflow", f"{mlflow.url}{API}/runs/create", "artifact_uri mlflow-artifacts:/...", artifact_uri,
            "the server does not proxy artifacts, so clients would need storage credentials: "
            "set artifactRoot.proxiedArtifactStorage"))
    artifact_path = artifact_uri.removeprefix("mlflow-artifacts:/").strip("/") + "/smoke.txt"
    artifacts = f"/api/2.0/mlflow-artifacts/artifacts/{artifact_path}"
    upload = call(context, mlflow, "PUT", artifacts, expect="artifact stored", data=context.run_id.encode(),
                  statuses=(200, 500))
    if upload.status_code != 200:
        raise CheckFailed(Diagnosis("mlflow", f"PUT {mlflow.url}{artifacts}", "artifact stored",
                                    f"HTTP {upload.status_code}: {upload.text[:160]}",
                                    "the artifact store is not writable: check the volume mounted at the "
                                    "server's artifacts destination"))
    read = json_of(call(context, mlflow, "GET", f"{API}/runs/get", expect="the run back",
                        params={"run_id": run_id}), mlflow, "the run back")
    metrics = {m["key"]: m["value"] for m in read["run"]["data"].get("metrics", [])}
    content = call(context, mlflow, "GET", artifacts, expect="the artifact back").text
    if metrics.get("smoke") != 1.0 or content != context.run_id:
        raise CheckFailed(Diagnosis("mlflow", f"{mlflow.url}{API}/runs/get", "metric smoke=1.0 and the artifact",
                                    f"metrics {metrics}, artifact {content[:40]!r}",
                                    "the backend store or artifact store lost the write"))
    return f"run {context.run_id} recorded and read back (deleted afterwards)"


PROBE_SCRIPT = """
import os, mlflow
mlflow.set_experiment("{experiment}")
with mlflow.start_run(run_name=os.environ["SMOKE_RUN"]) as run:
    mlflow.log_metric("smoke", 1.0)
    mlflow.log_text(os.environ["SMOKE_RUN"], "smoke.txt")
    print("RUN_ID=" + run.info.run_id)
"""


def from_the_agents(context: SmokeContext) -> str:
    """A run recorded from inside the cluster, as the agents' ServiceAccount with the agents'
    MLFLOW_TRACKING_URI and MLflow login (the wiring edge) into their tenant's experiment, using the
    MLflow client of the server's own image."""
    edge = context.edge(context.sample_tenant.agents_node, "mlflow")
    if edge is None:
        raise Skip("the platform has no gocd-agents -> mlflow edge")
    mlflow = context.target("mlflow")
    name = f"{context.run_id}-mlflow"
    try:
        log = context.cluster.run_probe(
            edge.consumer_namespace, name, timeout=max(context.timeout, 120),
            service_account=context.sample_tenant.service_account,
            labels={**(edge.consumer_pods or {}), **context.agent_marks[0]}, annotations=context.agent_marks[1],
            container={"image": context.probe_image,
                       "command": ["python", "-c", PROBE_SCRIPT.format(
                           experiment=context.sample_tenant.mlflow_experiment)],
                       "env": [*login_env(edge), *({"name": k, "value": v} for k, v in edge.variables.items()),
                               {"name": "SMOKE_RUN", "value": context.run_id},
                               # bounded: an unreachable server must fail the probe within the deadline
                               {"name": "MLFLOW_HTTP_REQUEST_MAX_RETRIES", "value": "2"},
                               {"name": "MLFLOW_HTTP_REQUEST_TIMEOUT", "value": "10"}]})
    except Exception as failure:  # noqa: BLE001 - probe failures are the finding
        raise CheckFailed(Diagnosis(
            "mlflow", f"probe pod {edge.consumer_namespace}/{name} -> {edge.url}",
            "a run recorded from the agents' namespace", str(failure)[:300],
            f"agents cannot reach MLflow at {edge.url}: Service name/port, MLflow's allowed hosts, "
            "or a network policy in the way")) from None
    run_id = next((line.split("=", 1)[1] for line in log.splitlines() if line.startswith("RUN_ID=")), None)
    if not run_id:
        raise CheckFailed(Diagnosis("mlflow", f"probe pod {name}", "RUN_ID=... in the probe's log", log[-200:],
                                    "the MLflow client in the probe failed; read the log above"))
    context.cleanups.append(lambda: context.post(mlflow, f"{API}/runs/delete", json={"run_id": run_id}))
    read = json_of(call(context, mlflow, "GET", f"{API}/runs/get", expect="the agents' run",
                        params={"run_id": run_id}), mlflow, "the agents' run")
    metrics = {m["key"]: m["value"] for m in read["run"]["data"].get("metrics", [])}
    if metrics.get("smoke") != 1.0:
        raise CheckFailed(Diagnosis("mlflow", f"{mlflow.url}{API}/runs/get", "metric smoke=1.0", str(metrics),
                                    "the agents reached another MLflow than the one users see"))
    return f"run {run_id} recorded from {edge.consumer_namespace} as {context.sample_tenant.service_account}"


APP_PROBE = """
import base64, os, urllib.request
login = os.environ.get("MLFLOW_TRACKING_USERNAME", "") + ":" + os.environ.get("MLFLOW_TRACKING_PASSWORD", "")
request = urllib.request.Request(os.environ["MLFLOW_TRACKING_URI"].rstrip("/") + "/api/2.0/mlflow/users/current",
                                 headers={"Authorization": "Basic " + base64.b64encode(login.encode()).decode()})
with urllib.request.urlopen(request, timeout=10) as answer:
    print("MLFLOW OK" if answer.status == 200 else "MLFLOW HTTP %d" % answer.status)
"""


def apps_to_mlflow(context: SmokeContext) -> str:
    """Each application namespace reaches MLflow and logs in with what it gives a model service: the
    URI from its ConfigMap, the login from the Secret its wiring edge names."""
    edges = context.app_edges("mlflow")
    if not edges:
        raise Skip("no application environment uses MLflow")
    for edge in edges:
        namespace = edge.consumer_namespace
        name = f"{context.run_id}-mlflow-{namespace.rsplit('-', 1)[-1]}"[:63]
        try:
            log = context.cluster.run_probe(namespace, name, timeout=max(context.timeout, 120),
                                            labels=edge.consumer_pods, container={
                "image": context.probe_image, "command": ["python", "-c", APP_PROBE],
                "envFrom": [{"configMapRef": {"name": ENDPOINTS_CONFIGMAP}}], "env": login_env(edge)})
        except Exception as failure:  # noqa: BLE001 - probe failures are the finding
            log = str(failure)
        if "MLFLOW OK" not in log:
            raise CheckFailed(Diagnosis(
                "mlflow", f"probe pod {namespace}/{name} -> {edge.url}", "MLflow's /health from the namespace",
                log[-300:], f"MLFLOW_TRACKING_URI in ConfigMap {namespace}/{ENDPOINTS_CONFIGMAP} does not lead to "
                            "MLflow, MLflow's allowed hosts refuse that name, or the login in "
                            f"{edge.credentials_secret if edge else None} is refused (HTTP 401)"))
    return f"MLflow reachable from {len(edges)} application namespace(s)"


CHECKS = (
    Check("mlflow.health", "mlflow", health),
    Check("mlflow.rest", "mlflow", rest_api),
    Check("mlflow.run", "mlflow", run_with_metric_and_artifact),
    Check("wire.gocd-agents-mlflow", "mlflow", from_the_agents, needs_cluster=True),
    Check("wire.app-mlflow", "mlflow", apps_to_mlflow, needs_cluster=True),
)
