"""platform.json as one typed document: what `plan` writes and the program exports is what smoke,
handouts and the CLI read back, field for field, with each service's settings in their own type."""

from __future__ import annotations

import json

import pytest
from stack_settings import workshop

from infra.config import load_config
from infra.document import PlatformDocument
from infra.platform.build import build_platform
from infra.platform.gocd import GoCDSettings
from infra.platform.ingress import IngressSettings
from infra.platform.mlflow import MLflowSettings

STACKS = {
    "local": {},
    "workshop": workshop(participants=3),
    "ingress": {"cd4ml:profile": "cluster", "cd4ml:participants": 2, "cd4ml:exposure": "ingress",
                "cd4ml:domain": "w.example.com", "cd4ml:tlsIssuer": "self-signed"},
    "gocd-only": {"cd4ml:services": "gocd"},
}


@pytest.mark.parametrize("settings", STACKS.values(), ids=STACKS.keys())
def test_the_document_survives_json_unchanged(settings):
    document = PlatformDocument.of(build_platform(load_config(settings), "s"))
    text = json.dumps(document.to_json())
    assert PlatformDocument.from_json(json.loads(text)) == document
    assert json.loads(text) == document.to_json()  # no tuple where JSON has a list


def test_edges_keep_their_public_json_names():
    document = PlatformDocument.of(build_platform(load_config({}), "local")).to_json()
    edge = next(e for e in document["wiring"] if (e["from"], e["to"]) == ("gocd-agents", "mlflow"))
    assert set(edge) == {"from", "from_namespace", "from_pods", "to", "to_namespace", "to_pods", "kind", "url",
                         "port", "pod_port", "credentials_secret", "delivered_by", "variables"}
    assert edge["variables"] == {"MLFLOW_TRACKING_URI": edge["url"], "MLFLOW_TRACKING_URL": edge["url"]}


def test_settings_are_typed_and_the_agents_environment_is_the_models():
    platform = build_platform(load_config(STACKS["workshop"]), "workshop")
    document = PlatformDocument.of(platform)
    gocd = document.settings(GoCDSettings)
    profile = gocd.agent_profiles["cd4ml-ml-p02"]
    assert (profile.tenant, profile.service_account) == ("p02", "gocd-agent-p02")
    mlflow_edge = document.edge("gocd-agents:p02", "mlflow")
    assert profile.env["MLFLOW_TRACKING_URI"] == mlflow_edge.url
    assert profile.env["CD4ML_NAMESPACE_STAGING"] == "cd4ml-p02-staging"
    assert "MLFLOW_TRACKING_PASSWORD" not in profile.env  # from a Secret: never a value in the document
    assert document.settings(MLflowSettings).experiments == ("p01", "p02", "p03")
    with pytest.raises(LookupError, match="IngressSettings"):
        document.settings(IngressSettings)


def test_the_sample_tenant_is_the_first_participant_or_the_team():
    workshop = PlatformDocument.of(build_platform(load_config(STACKS["workshop"]), "w"))
    assert workshop.sample_tenant.name == "p01"
    assert {e.consumer for e in workshop.app_edges("mlflow")} == {"app:p01:staging", "app:p01:production"}
    team = PlatformDocument.of(build_platform(load_config({}), "local"))
    assert (team.sample_tenant.name, team.sample_tenant.agents_node) == (None, "gocd-agents")
    assert {e.consumer for e in team.app_edges("mlflow")} == {"app:staging", "app:production"}
