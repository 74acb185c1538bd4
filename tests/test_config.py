"""Stack config: every mistake is caught before anything is built, and the message names the key,
the value given and what is allowed."""

from __future__ import annotations

from pathlib import Path

import pytest
from stack_settings import workshop

from infra.config import (
    CONFIG_KEYS,
    RESERVED_TENANTS,
    SERVICE_NAMES,
    ConfigError,
    Exposure,
    Profile,
    StackConfig,
    load_config,
    load_stack,
    parse_overrides,
)

STACKS = Path(__file__).resolve().parents[1] / "stacks"

BAD_INPUTS = [
    # (id, raw config, key named, fragment of what is allowed/expected)
    ("unknown-key-typo", {"cd4ml:profle": "laptop"}, "profle", "did you mean 'profile'"),
    ("unknown-key-far", {"cd4ml:colour": "blue"}, "colour", "known keys: profile"),
    ("unknown-profile", {"cd4ml:profile": "huge"}, "profile", "'laptop' or 'cluster'"),
    ("profile-wrong-type", {"cd4ml:profile": 3}, "profile", "'laptop' or 'cluster'"),
    ("unknown-service", {"cd4ml:services": ["gocd", "grafanna"]}, "services", "did you mean 'grafana'"),
    ("service-twice", {"cd4ml:services": ["gocd", "gocd"]}, "services", "twice"),
    ("kibana-without-es", {"cd4ml:services": ["kibana", "gocd"]}, "services", "kibana needs elasticsearch"),
    ("fluentd-without-es", {"cd4ml:services": "fluentd,mlflow"}, "services", "fluentd needs elasticsearch"),
    ("grafana-without-es", {"cd4ml:services": '["grafana"]'}, "services", "grafana needs elasticsearch"),
    ("negative-es-nodes", {"cd4ml:elasticsearchNodes": -1}, "elasticsearchNodes", "from 1 to 9"),
    ("absurd-es-nodes", {"cd4ml:profile": "cluster", "cd4ml:elasticsearchNodes": 500}, "elasticsearchNodes",
     "from 1 to 9"),
    ("laptop-three-es-nodes", {"cd4ml:elasticsearchNodes": 3}, "elasticsearchNodes", "profile=cluster"),
    ("es-nodes-not-a-number", {"cd4ml:elasticsearchNodes": "three"}, "elasticsearchNodes", "whole number"),
    ("es-nodes-fraction", {"cd4ml:elasticsearchNodes": 1.5}, "elasticsearchNodes", "whole number"),
    ("zero-storage", {"cd4ml:elasticsearchStorageGi": 0}, "elasticsearchStorageGi", "from 1 to 1024"),
    ("absurd-storage", {"cd4ml:mlflowStorageGi": 100000}, "mlflowStorageGi", "from 1 to 1024"),
    ("negative-agents", {"cd4ml:gocdAgents": -2}, "gocdAgents", "from 0 to 20"),
    ("negative-participants", {"cd4ml:participants": -5}, "participants", "from 0 to 100"),
    ("absurd-participants", {"cd4ml:participants": 100000}, "participants", "from 0 to 100"),
    ("malformed-repo-url", {"cd4ml:modelRepos": ["not a url"]}, "modelRepos", "is not a git URL"),
    ("repo-url-ftp", {"cd4ml:modelRepos": ["ftp://example.com/x.git"]}, "modelRepos", "is not a git URL"),
    ("repo-url-no-path", {"cd4ml:modelRepos": ["https://github.com"]}, "modelRepos", "is not a git URL"),
    ("prefix-uppercase", {"cd4ml:namespacePrefix": "CD4ML"}, "namespacePrefix", "DNS label"),
    ("prefix-too-long", {"cd4ml:namespacePrefix": "x" * 41}, "namespacePrefix", "at most 40"),
    ("env-not-dns", {"cd4ml:appEnvironments": ["Staging"]}, "appEnvironments", "not a DNS label"),
    ("no-envs", {"cd4ml:appEnvironments": []}, "appEnvironments", "1 to 5"),
    ("unknown-exposure", {"cd4ml:exposure": "loadbalancer"}, "exposure", "'port-forward', 'node-port' or 'ingress'"),
    ("ingress-on-laptop", {"cd4ml:exposure": "ingress", "cd4ml:domain": "w.example.com",
                           "cd4ml:acmeEmail": "a@example.com"}, "exposure", "set profile=cluster"),
    ("ingress-without-domain", {"cd4ml:profile": "cluster", "cd4ml:exposure": "ingress",
                                "cd4ml:tlsIssuer": "self-signed"}, "domain", "set the domain"),
    ("ingress-without-email", {"cd4ml:profile": "cluster", "cd4ml:exposure": "ingress",
                               "cd4ml:domain": "w.example.com"}, "acmeEmail", "tlsIssuer=self-signed"),
    ("domain-with-scheme", {"cd4ml:domain": "https://example.com"}, "domain", "DNS name"),
    ("bad-email", {"cd4ml:acmeEmail": "nobody"}, "acmeEmail", "e-mail address"),
    ("gke-without-project", {"cd4ml:profile": "cluster", "cd4ml:clusterProvider": "gke",
                             "cd4ml:cloudRegion": "europe-west1-b"}, "cloudProject", "GCP project"),
    ("workshop-on-port-forward", {"cd4ml:participants": 3}, "exposure", "no address they can open"),
    ("workshop-on-node-ports", {"cd4ml:profile": "cluster", "cd4ml:exposure": "node-port", "cd4ml:participants": 3},
     "exposure", "no address they can open"),
    ("workshop-with-static-agents", {**workshop(participants=3), "cd4ml:gocdAgents": 1}, "gocdAgents",
     "elastic agents"),
    ("agent-image-without-registry", {"cd4ml:agentImage": "python:3.8"}, "agentImage", "registry/repository:tag"),
    ("agent-image-latest", {"cd4ml:agentImage": "registry.example.com/team/agent:latest"}, "agentImage",
     "not :latest"),
    ("participant-name-prefix", {"cd4ml:participantNames": ["ann", "ann-b"]}, "participantNames",
     "another's followed by '-'"),
    ("workshop-days-too-long", {"cd4ml:profile": "cluster", "cd4ml:clusterProvider": "gke", "cd4ml:cloudProject": "p",
                                "cd4ml:cloudRegion": "europe-west1-b", "cd4ml:imageRegistry": "r.example.com/cd4ml",
                                "cd4ml:workshopDays": ["2026-12-01", "2026-12-31"]}, "workshopDays", "30 days"),
    ("workshop-days-not-dates", {"cd4ml:workshopDays": ["next monday"]}, "workshopDays", "dates like"),
    ("workshop-days-on-kind", {"cd4ml:workshopDays": ["2026-12-08"]}, "workshopDays", "only used with"),
    ("workshop-days-without-gke", {"cd4ml:profile": "cluster", "cd4ml:clusterProvider": "eks",
                                   "cd4ml:cloudRegion": "eu-west-1", "cd4ml:imageRegistry": "r.example.com/cd4ml",
                                   "cd4ml:workshopDays": ["2026-12-08"]}, "workshopDays", "only used with"),
    ("gke-in-a-region", {"cd4ml:profile": "cluster", "cd4ml:clusterProvider": "gke", "cd4ml:cloudProject": "p",
                         "cd4ml:cloudRegion": "europe-west1", "cd4ml:imageRegistry": "r.example.com/cd4ml"},
     "cloudRegion", "give a zone"),
    ("eks-without-region", {"cd4ml:profile": "cluster", "cd4ml:clusterProvider": "eks"}, "cloudRegion",
     "AWS region"),
    ("cloud-on-laptop", {"cd4ml:clusterProvider": "eks", "cd4ml:cloudRegion": "eu-west-1"}, "clusterProvider",
     "profile=cluster"),
    ("machine-not-priced", {"cd4ml:profile": "cluster", "cd4ml:clusterProvider": "eks",
                            "cd4ml:cloudRegion": "eu-west-1", "cd4ml:machineType": "t3.micro"}, "machineType",
     "m6i.xlarge"),
    ("machine-without-cloud", {"cd4ml:machineType": "e2-standard-8"}, "machineType", "only used with"),
    ("es-7", {"cd4ml:elasticStackVersion": "7.17.0"}, "elasticStackVersion", "Elasticsearch 8"),
    ("storage-class-bad", {"cd4ml:storageClass": "Fast SSD"}, "storageClass", "StorageClass name"),
    ("services-not-a-list", {"cd4ml:services": {"gocd": True}}, "services", "list"),
]


@pytest.mark.parametrize("raw, key, allowed", [case[1:] for case in BAD_INPUTS], ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_names_key_value_and_what_is_allowed(raw, key, allowed):
    with pytest.raises(ConfigError) as caught:
        load_config(raw)
    message = str(caught.value)
    assert f"cd4ml:{key} = " in message
    assert allowed in message
    offending = raw.get(f"cd4ml:{key}")
    if isinstance(offending, (int, str)) and key != "services":
        assert repr(offending) in message or str(offending) in message


def test_every_problem_is_reported_at_once():
    with pytest.raises(ConfigError) as caught:
        load_config({"cd4ml:profle": "x", "cd4ml:gocdAgents": 99, "cd4ml:exposure": "public"})
    assert {p.key for p in caught.value.problems} == {"profle", "gocdAgents", "exposure"}


def test_defaults_are_a_complete_laptop_platform():
    config = load_config({})
    assert config.profile is Profile.LAPTOP
    assert config.exposure is Exposure.PORT_FORWARD
    assert set(config.services) == {"gocd", "elasticsearch", "kibana", "fluentd", "grafana", "mlflow", "gitea"}
    assert config.elasticsearch_nodes == 1


def test_text_from_the_pulumi_engine_is_typed():
    # The engine passes every value as text; arrays as JSON.
    config = load_config({"cd4ml:gocdAgents": "3", "cd4ml:services": '["gocd","mlflow"]',
                          "cd4ml:modelRepos": '["git@github.com:team/model.git"]'})
    assert config.gocd_agents == 3
    assert config.services == ("gocd", "mlflow")
    assert config.model_repos == ("git@github.com:team/model.git",)


def test_provider_keys_are_left_to_their_providers():
    assert load_config({"kubernetes:context": "kind-x"}).kube_context == ""


def test_participants_by_count_or_by_name():
    assert load_config(workshop(participants=10)).participant_list[:2] == ("p01", "p02")
    assert load_config(workshop(participants=100)).participant_list[-1] == "p100"
    assert load_config(workshop(participantNames="alice,bob")).participant_list == ("alice", "bob")
    assert load_config({}).participant_list == ()
    with pytest.raises(ConfigError, match="participants = 3: participantNames lists 2 names"):
        load_config(workshop(participantNames="alice,bob", participants=3))
    with pytest.raises(ConfigError, match="'Alice' is not a DNS label"):
        load_config({"cd4ml:participantNames": "Alice"})
    with pytest.raises(ConfigError, match="'cd4ml' is reserved"):
        load_config({"cd4ml:participantNames": "cd4ml"})
    with pytest.raises(ConfigError, match="lists a name twice"):
        load_config({"cd4ml:participantNames": "bob,bob"})


def test_the_kits_own_logins_are_no_participants_name():
    from infra.platform import gitea

    assert {gitea.ADMIN_USER, gitea.READER_USER} <= set(RESERVED_TENANTS)
    with pytest.raises(ConfigError, match="'cd4ml-gocd' is reserved"):
        load_config(workshop(participantNames="ada,cd4ml-gocd"))


def test_names_gitea_keeps_for_itself_are_refused_while_it_runs():
    """Gitea refuses a user named `explore` or `user` (models/user/user.go reservedUsernames): the participant
    would have no login and no repository, so the stack says so before anything is made."""
    with pytest.raises(ConfigError) as caught:
        load_config(workshop(participantNames="ada,explore,user"))
    (problem,) = caught.value.problems
    assert problem.key == "participantNames" and "explore, user: Gitea, the git server, keeps" in problem.problem
    without_git = [s for s in SERVICE_NAMES if s != "gitea"]
    assert load_config(workshop(participantNames="ada,explore", services=without_git)).participant_list[1] == "explore"


def test_every_field_has_a_description():
    assert all(field.description for field in StackConfig.model_fields.values())
    assert len(CONFIG_KEYS) == len(set(CONFIG_KEYS))


def test_set_override_fixes_a_stack_value():
    config = load_stack(STACKS, "cluster", {"elasticsearchNodes": "5"})
    assert config.elasticsearch_nodes == 5
    assert config.profile is Profile.CLUSTER


def test_set_override_is_validated_like_the_file():
    with pytest.raises(ConfigError, match="cd4ml:gocdAgents = '-1'"):
        load_stack(STACKS, "local", {"gocdAgents": "-1"})


def test_set_without_equals_is_a_config_problem():
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_overrides(["profile"])


def test_unknown_stack_names_the_stacks_there_are():
    with pytest.raises(ConfigError) as caught:
        load_stack(STACKS, "locall")
    assert "did you mean 'local'" in str(caught.value)
    assert "cluster" in str(caught.value)


@pytest.mark.parametrize("stack", sorted(p.name.split(".")[1] for p in STACKS.glob("Pulumi.*.yaml")))
def test_shipped_stacks_are_valid(stack):
    load_stack(STACKS, stack)


def test_broken_yaml_is_a_config_error(tmp_path):
    (tmp_path / "Pulumi.bad.yaml").write_text("config: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_stack(tmp_path, "bad")
