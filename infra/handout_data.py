"""What a handout page shows beyond the tenant's own names: the links people open and the
variables their pipeline's jobs get, read from the platform model (never typed twice)."""

from __future__ import annotations

import json

from infra.handout import Links
from infra.platform.access import browser_url
from infra.platform.gocd import elastic_agent_pod
from infra.platform.model import Platform

SHOWN_VARIABLES = ("CD4ML_TENANT", "MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "FLUENTD_HOST", "FLUENTD_PORT")


def handout_links(platform: Platform) -> Links:
    def url(name: str, suffix: str = "") -> str:
        service = platform.services.get(name)
        if not service or not service.endpoint:
            return "(not in this stack)"
        return (service.public_url or browser_url(name, service.endpoint)) + suffix

    return Links(gocd=url("gocd"), mlflow=url("mlflow"), kibana=url("kibana", "/app/discover"),
                 grafana=url("grafana", "/d/cd4ml-model-monitoring"))


def handout_envs(platform: Platform) -> dict[str, dict[str, str]]:
    """Each tenant's agent environment (the variables worth knowing), from GoCD's desired config."""
    gocd = platform.services.get("gocd")
    if gocd is None:
        return {}
    desired = json.loads(gocd.stages[-1].objects[0]["data"]["desired.json"])
    envs = {}
    for tenant in platform.tenants:
        pod = elastic_agent_pod(desired, tenant.elastic_profile)
        env = {e["name"]: e["value"] for e in pod["spec"]["containers"][0]["env"] if "value" in e}
        envs[tenant.name] = {k: v for k, v in env.items() if k in SHOWN_VARIABLES or k.startswith("CD4ML_NAMESPACE_")}
    return envs
