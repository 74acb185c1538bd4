"""`workshop.logins` and `workshop.participants-apart`: the sample participant's one login against GoCD,
Kibana, Grafana (stand-ins, each configured by the kit's own configure code with the participants) and a
real MLflow server (configured by the kit's code), their password read from their Secret as in a cluster;
then the same with the faults these checks exist for."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest
import yaml
from gocd_api import GoCDApiStandIn
from kube_objects import configure_desired, configure_objects, with_password_files
from services import Connection, ElasticsearchStandIn, GrafanaStandIn, KibanaStandIn
from smoke_fixtures import GOCD_ADMIN, MLFLOW_ADMIN, PASSWORDS, kit_security
from stack_settings import workshop

from infra.config import load_config
from infra.configure import gocd as configure_gocd
from infra.configure import grafana as configure_grafana
from infra.configure.api import JsonApi
from infra.document import PlatformDocument
from infra.platform import elasticsearch
from infra.platform.build import build_platform
from infra.smoke.checks.workshop import participant_logins, participants_apart
from infra.smoke.core import CheckFailed, SmokeContext, Target


@dataclass
class Secrets:
    """The cluster as these checks use it: Secrets to read."""

    data: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)

    def read_secret(self, namespace: str, name: str) -> dict[str, str]:
        return self.data[(namespace, name)]


@pytest.fixture(scope="module")
def workshop_platform(tmp_path_factory, mlflow_server, unique_name):
    own, other = unique_name("ada"), unique_name("grace")
    logins = {own: f"{own}-pw-1", other: f"{other}-pw-2"}
    config = workshop(participantNames=f"{own},{other}")
    platform = build_platform(load_config(config), "workshop")
    mlflow_server.configure_like_the_kit(config, logins)
    security = kit_security()
    security.role_definitions.update(yaml.safe_load(elasticsearch.roles_document(platform.tenants)))
    security.user_roles.update({name: (elasticsearch.tenant_role(name),) for name in logins})
    es = ElasticsearchStandIn({**PASSWORDS, **logins}, security).start()
    kibana = KibanaStandIn(Connection(es.url, "kibana-association", PASSWORDS["kibana-association"]),
                           users={"cd4ml-admin": PASSWORDS["cd4ml-admin"], **logins}).start()
    grafana = GrafanaStandIn(("admin", "grafana-admin-pw"), {}).start()
    config_map, _ = configure_objects(platform.services["grafana"])
    desired = json.loads(config_map["data"]["desired.json"])
    passwords = tmp_path_factory.mktemp("grafana-logins")
    for name, password in logins.items():
        (passwords / name).write_text(password)
    desired["password_dir"] = str(passwords)
    configure_grafana.configure(JsonApi(grafana.url, "admin", "grafana-admin-pw"), desired, health_timeout=5)
    gocd = GoCDApiStandIn(users={GOCD_ADMIN[0]: GOCD_ADMIN[1], **logins}).start()
    configure_gocd.configure(JsonApi(f"{gocd.url}/go", *GOCD_ADMIN, anonymous_first=True),
                             with_password_files(configure_desired(platform.services["gocd"]), "reader-pw"), health_timeout=5)
    targets = {"gocd": Target("gocd", f"{gocd.url}/go", *GOCD_ADMIN), "kibana": Target("kibana", kibana.url),
               "grafana": Target("grafana", grafana.url, "admin", "grafana-admin-pw"),
               "mlflow": Target("mlflow", mlflow_server.url, *MLFLOW_ADMIN),
               "elasticsearch": Target("elasticsearch", es.url, "cd4ml-admin", PASSWORDS["cd4ml-admin"])}
    secrets = Secrets({("cd4ml-logging", f"elasticsearch-user-{name}"): {"username": name, "password": password}
                       for name, password in logins.items()})
    try:
        yield PlatformDocument.of(platform), targets, secrets, security, (own, other)
    finally:
        for stand_in in (gocd, grafana, kibana, es):
            stand_in.stop()


def context_of(document, targets, secrets) -> SmokeContext:
    return SmokeContext(platform=document, targets=dict(targets), cluster=secrets, timeout=3.0)


def test_the_sample_participant_logs_in_everywhere_and_reads_only_their_own(workshop_platform):
    document, targets, secrets, _, (own, other) = workshop_platform
    context = context_of(document, targets, secrets)
    assert participant_logins(context) == f"{own} logs in to GoCD, Kibana, Grafana, MLflow (their experiment)"
    assert participants_apart(context) == f"{own} cannot read {other}'s experiment or events"


def test_a_login_a_service_does_not_know_is_named_with_where_it_comes_from(workshop_platform):
    document, targets, secrets, _, (own, _) = workshop_platform
    wrong = Secrets({**secrets.data, ("cd4ml-logging", f"elasticsearch-user-{own}"): {"username": own,
                                                                                      "password": "stale"}})
    with pytest.raises(CheckFailed) as failed:
        participant_logins(context_of(document, targets, wrong))
    diagnosis = failed.value.diagnosis
    assert diagnosis.component == "gocd" and f"{own}'s login accepted" in diagnosis.expected
    assert "stale" not in str(diagnosis)  # never the password


def test_a_role_that_reads_everyones_events_is_caught(workshop_platform):
    document, targets, secrets, security, (own, other) = workshop_platform
    role = elasticsearch.tenant_role(own)
    kept = security.role_definitions[role]
    security.role_definitions[role] = {**kept, "indices": [{"names": ["cd4ml-events-*"], "privileges": ["read"]}]}
    try:
        with pytest.raises(CheckFailed) as failed:
            participants_apart(context_of(document, targets, secrets))
    finally:
        security.role_definitions[role] = kept
    assert failed.value.diagnosis.component == "elasticsearch"
    assert f"cd4ml-events-{other}-*" in failed.value.diagnosis.expected
