"""The rules across keys: what one setting needs of another (a service of the one it reads, ingress
of a domain, a cloud cluster of its project and region, a machine of the price table)."""

from __future__ import annotations

import re

from infra.config.errors import ConfigError, ConfigProblem
from infra.config.model import (
    SERVICE_REQUIREMENTS,
    ClusterProvider,
    Exposure,
    Profile,
    StackConfig,
    TlsIssuer,
    key_of,
)
from infra.machines import MACHINES
from infra.upstream.gitea import RESERVED_USERNAMES as GITEA_RESERVED

GKE_ZONE = re.compile(r"[a-z]+-[a-z]+[0-9]+-[a-z]")
"""A GCP zone (europe-west1-b), not a region (europe-west1)."""


def check_requirements(config: StackConfig, source: str) -> None:
    problems = [
        ConfigProblem(
            key=key_of("services"), value=list(config.services),
            problem=f"{service} needs {needed}, which is not in the list; add {needed} or remove {service}")
        for service, needs in SERVICE_REQUIREMENTS.items() if config.enabled(service)
        for needed in needs if not config.enabled(needed)
    ]
    if config.profile is Profile.LAPTOP and config.elasticsearch_nodes > 1:
        problems.append(ConfigProblem(
            key=key_of("elasticsearch_nodes"), value=config.elasticsearch_nodes,
            problem="the laptop profile runs exactly 1 Elasticsearch node; set profile=cluster for more"))
    longest = max([len(n) + 1 for n in config.participant_list] or [0]) + max(len(e) for e in config.app_environments)
    if len(config.namespace_prefix) + 1 + longest > 63:
        problems.append(ConfigProblem(
            key=key_of("namespace_prefix"), value=config.namespace_prefix,
            problem=f"namespaces <prefix>-<participant>-<environment> would exceed 63 characters; "
                    f"use a prefix of at most {62 - longest} characters"))
    if config.participant_names and config.participants not in (0, len(config.participant_names)):
        problems.append(ConfigProblem(
            key=key_of("participants"), value=config.participants,
            problem=f"participantNames lists {len(config.participant_names)} names; set participants to "
                    f"{len(config.participant_names)} or leave it 0"))
    problems += _workshop_problems(config)
    problems += _cloud_problems(config)
    if problems:
        raise ConfigError(problems, source)


def _workshop_problems(config: StackConfig) -> list[ConfigProblem]:
    """Participants open the services, and call their model service, from their own laptops: only a
    published stack gives their pages addresses they can open (port-forward is the facilitator's own
    localhost; node ports are nobody's known address and publish no model service)."""
    if not config.participant_list:
        return []
    problems = []
    if config.gocd_agents:
        problems.append(ConfigProblem(
            key="gocdAgents", value=config.gocd_agents,
            problem="static agents would run any participant's jobs with one participant's rights; a workshop's "
                    "jobs run on each participant's own elastic agents: set gocdAgents=0"))
    if config.enabled("gitea") and (taken := [n for n in config.participant_list if n in GITEA_RESERVED]):
        problems.append(ConfigProblem(
            key="participantNames", value=list(config.participant_names),
            problem=f"{', '.join(taken)}: Gitea, the git server, keeps these names for itself, so they could have no "
                    "login or repository there; choose other names"))
    if config.exposure is Exposure.INGRESS:
        return problems
    pointing_at = ("the facilitator's own localhost" if config.exposure is Exposure.PORT_FORWARD
                   else "node ports nobody is told of, and no model service")
    return [*problems, ConfigProblem(
        key="exposure", value=config.exposure.value,
        problem=f"participants ({len(config.participant_list)}) work from their own laptops, and "
                f"'{config.exposure.value}' gives their pages no address they can open (only {pointing_at}); "
                "set exposure=ingress with profile=cluster and domain=<a name whose DNS points at the ingress "
                "controller, or <its address>.sslip.io> (as stacks/Pulumi.workshop.yaml does), or participants=0 "
                "for a single team")]


def _cloud_problems(config: StackConfig) -> list[ConfigProblem]:
    """Ingress and cloud clusters are for the cluster profile, and each needs its own settings."""
    problems = []
    if config.exposure is Exposure.INGRESS:
        if config.profile is not Profile.CLUSTER:
            problems.append(ConfigProblem(key="exposure", value=config.exposure.value,
                                          problem="ingress is for the cluster profile (laptops use port-forward); "
                                                  "set profile=cluster or exposure=port-forward"))
        if not config.domain:
            problems.append(ConfigProblem(key="domain", value=config.domain,
                                          problem="exposure 'ingress' publishes <service>.<domain>: set the domain "
                                                  "whose DNS points at the ingress controller"))
        if config.tls_issuer is not TlsIssuer.SELF_SIGNED and not config.acme_email:
            problems.append(ConfigProblem(key="acmeEmail", value=config.acme_email,
                                          problem=f"tlsIssuer {config.tls_issuer.value} needs a contact address "
                                                  "for Let's Encrypt (or set tlsIssuer=self-signed)"))
    provider = config.cluster_provider
    if provider is not ClusterProvider.EXISTING:
        if config.profile is not Profile.CLUSTER:
            problems.append(ConfigProblem(key="clusterProvider", value=provider.value,
                                          problem="a cloud cluster runs the cluster profile; set profile=cluster"))
        if provider is ClusterProvider.GKE and not config.cloud_project:
            problems.append(ConfigProblem(key="cloudProject", value=config.cloud_project,
                                          problem="a GKE cluster needs the GCP project it is billed to"))
        if not config.cloud_region:
            problems.append(ConfigProblem(key="cloudRegion", value=config.cloud_region,
                                          problem=f"a {provider.value.upper()} cluster needs its "
                                                  + ("zone" if provider is ClusterProvider.GKE
                                                     else "AWS region")))
        if provider is ClusterProvider.GKE and config.cloud_region and not GKE_ZONE.fullmatch(config.cloud_region):
            problems.append(ConfigProblem(key="cloudRegion", value=config.cloud_region,
                                          problem="give a zone, like europe-west1-b: in a region GKE runs the node "
                                                  "count in each of its zones (three times the nodes and the bill "
                                                  "the estimate counts)"))
        if config.enabled("gocd") and not config.image_registry:
            problems.append(ConfigProblem(key="imageRegistry", value=config.image_registry,
                                          problem="a cloud cluster pulls the kit's own images (the ML agent, the "
                                                  "model runtime) from a registry: set one it can pull from, e.g. "
                                                  "europe-docker.pkg.dev/<project>/cd4ml"))
        if config.machine_type and config.machine_type not in MACHINES[provider.value]:
            problems.append(ConfigProblem(key="machineType", value=config.machine_type,
                                          problem=f"not in the kit's {provider.value} price table; allowed: "
                                                  + ", ".join(MACHINES[provider.value])))
        if config.workshop_days and provider is not ClusterProvider.GKE:
            problems.append(ConfigProblem(key="workshopDays", value=",".join(config.workshop_days),
                                          problem="only used with clusterProvider gke (a maintenance exclusion)"))
    elif config.workshop_days:
        problems.append(ConfigProblem(key="workshopDays", value=",".join(config.workshop_days),
                                      problem="only used with clusterProvider gke (a maintenance exclusion)"))
    elif config.machine_type or config.cloud_project:
        key = "machineType" if config.machine_type else "cloudProject"
        problems.append(ConfigProblem(key=key, value=config.machine_type or config.cloud_project,
                                      problem="only used with clusterProvider gke or eks"))
    return problems


