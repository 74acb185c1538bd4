"""MLflow tracking server from the `community-charts/mlflow` chart.

Backend store: SQLite on a volume the kit claims (the chart's default is in-memory, which loses
every run on restart). Artifacts are proxied by the server (`mlflow-artifacts:`), so pipeline
agents and model services need no storage credentials. MLflow 3 rejects requests whose Host
header it does not know; the allowed hosts are derived from the Service endpoint.
Config keys read: mlflowStorageGi, exposure, profile.
"""

from __future__ import annotations

from infra.config import Profile
from infra.platform.access import service_type
from infra.platform.configure_job import configure_job
from infra.platform.context import BuildContext
from infra.platform.kit_images import PYTHON_IMAGE
from infra.platform.layout import Namespaces
from infra.platform.model import (
    PART_OF,
    ChartPin,
    Container,
    Endpoint,
    Image,
    Labels,
    Resources,
    Service,
    Stage,
    Workload,
)

CHART = ChartPin(repo="https://community-charts.github.io/helm-charts", chart="mlflow", version="1.11.5")
IMAGE = Image(repository="burakince/mlflow", tag="3.15.1")
RELEASE = "mlflow"
PODS: Labels = (("app.kubernetes.io/name", "mlflow"), ("app.kubernetes.io/instance", RELEASE))
HTTP_PORT = 5000
DATA_CLAIM = "mlflow-data"
DATA_DIR = "/mlflow"
SIZES = {
    Profile.LAPTOP: Resources(100, 256, 500, 768),
    Profile.CLUSTER: Resources(250, 512, 1000, 1536),
}


CONFIGURE_TIMEOUT_SECONDS = 600


def endpoint(ns: Namespaces) -> Endpoint:
    return Endpoint(RELEASE, ns.mlflow, HTTP_PORT)


def allowed_hosts(ep: Endpoint) -> list[str]:
    """Every name in-cluster clients may use, with and without the port (MLflow does not strip
    it), plus localhost for `kubectl port-forward`."""
    names = [ep.service, f"{ep.service}.{ep.namespace}", f"{ep.service}.{ep.namespace}.svc", ep.host]
    return [h for name in names for h in (name, f"{name}:{ep.port}")] + ["localhost:*", "127.0.0.1:*"]


def build(ctx: BuildContext) -> Service:
    ns = ctx.ns
    ep = endpoint(ns)
    size = SIZES[ctx.profile]
    image = ctx.image(IMAGE)
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": DATA_CLAIM, "namespace": ns.mlflow, "labels": dict(PART_OF)},
        "spec": ctx.volume_claim(ctx.config.mlflow_storage_gi),
    }
    values = {
        "image": {"repository": image.name, "tag": image.tag},
        "service": {"type": service_type("mlflow", ctx.config.exposure),
                    "port": HTTP_PORT},
        "resources": size.as_k8s(),
        "backendStore": {"defaultSqlitePath": f"{DATA_DIR}/mlflow.db"},
        "artifactRoot": {"proxiedArtifactStorage": True, "defaultArtifactsDestination": f"{DATA_DIR}/artifacts"},
        # One worker: SQLite and several writer processes do not mix.
        "extraArgs": {"workers": "1"},
        "extraVolumes": [{"name": "data", "persistentVolumeClaim": {"claimName": DATA_CLAIM}}],
        "extraVolumeMounts": [{"name": "data", "mountPath": DATA_DIR}],
        "serverAllowedHosts": allowed_hosts(ep),
        # The chart's defaults are hardened but for seccomp, which the `restricted` Pod Security level requires.
        "podSecurityContext": {"fsGroup": 1001, "fsGroupChangePolicy": "OnRootMismatch",
                               "seccompProfile": {"type": "RuntimeDefault"}},
    }
    configure = configure_job(
        name="mlflow-configure", namespace=ns.mlflow, module="mlflow",
        desired={"experiments": [{"experiment": t.experiment, "tenant": t.name} for t in ctx.tenants]},
        env={"MLFLOW_URL": ctx.configure_edge("mlflow").url,
             "CD4ML_HEALTH_TIMEOUT": str(CONFIGURE_TIMEOUT_SECONDS - 60)}, secret_env={},
        timeout_seconds=CONFIGURE_TIMEOUT_SECONDS, image=ctx.image(PYTHON_IMAGE))
    return Service(
        name="mlflow",
        namespace=ns.mlflow,
        endpoint=ep,
        credentials=None,
        secrets=(),
        stages=(Stage(objects=(claim,)), Stage(releases=(CHART.release(RELEASE, ns.mlflow, values),)),
                Stage(objects=configure)),
        workloads=(Workload(RELEASE, "Deployment", 1, (Container("mlflow", image, size),)),),
        extra_images=(ctx.image(PYTHON_IMAGE),),
        settings={"experiments": [t.experiment for t in ctx.tenants], "image": image.ref},
    )
