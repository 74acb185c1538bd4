"""The Pulumi program's composition root: config -> platform model -> one component per service."""

from __future__ import annotations

import os
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from infra.cluster import INGRESS_ADDRESS_OUTPUT
from infra.components.apps import AppEnvironments
from infra.components.base import ServiceArgs, ServiceComponent
from infra.components.elasticsearch import Elasticsearch
from infra.components.fluentd import Fluentd
from infra.components.foundations import GeneratedPasswords, Namespaces
from infra.components.gitea import Gitea
from infra.components.gocd import GoCD
from infra.components.grafana import Grafana
from infra.components.ingress import Ingress
from infra.components.kibana import Kibana
from infra.components.mlflow import MLflow
from infra.components.network import NetworkPolicies
from infra.config import (
    CLUSTER_STACK_ENV,
    KUBE_CONTEXT_ENV,
    KUBE_TARGET_OUTPUT,
    PROJECT,
    ClusterProvider,
    ConfigError,
    StackConfig,
    load_config,
)
from infra.document import PlatformDocument
from infra.platform import hosts, ingress
from infra.platform.apps import NAME as APPS
from infra.platform.build import build_platform
from infra.platform.network import NAME as NETWORK

COMPONENTS: dict[str, type[ServiceComponent]] = {
    "gocd": GoCD,
    "elasticsearch": Elasticsearch,
    "kibana": Kibana,
    "fluentd": Fluentd,
    "grafana": Grafana,
    "mlflow": MLflow,
    "gitea": Gitea,
}


def load_from_pulumi() -> StackConfig:
    """The running stack's config, as the Pulumi engine passes it to the program."""
    from pulumi.runtime import config as runtime_config

    # The language host hands config over as PULUMI_CONFIG or through set_all_config (mocks too).
    raw = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    # `cd4ml up` passes the cluster stack it created, or the context it chose, this way rather than
    # writing into the stack file (which is the user's, and tracked).
    if os.environ.get(CLUSTER_STACK_ENV):
        raw[f"{PROJECT}:clusterStack"] = os.environ[CLUSTER_STACK_ENV]
    if os.environ.get(KUBE_CONTEXT_ENV) and not raw.get(f"{PROJECT}:kubeContext"):
        raw[f"{PROJECT}:kubeContext"] = os.environ[KUBE_CONTEXT_ENV]
    return load_config(raw, source=f"stack '{pulumi.get_stack()}'")

def run() -> None:
    try:
        config = load_from_pulumi()
    except ConfigError as invalid:
        # Before any resource is registered: nothing is created from a bad config.
        raise pulumi.RunError(str(invalid)) from None
    platform = build_platform(config, pulumi.get_stack())

    controller_values: dict[str, Any] = {}
    if config.cluster_stack:
        # The cluster is its own stack (infra/cluster/): its kubeconfig crosses over, and on GKE the
        # address reserved for the ingress controller, so the DNS record outlives a platform recreate.
        cluster = pulumi.StackReference("cluster", stack_name=config.cluster_stack)
        provider = k8s.Provider("kubernetes", kubeconfig=cluster.require_output("kubeconfig"))
        if config.cluster_provider is ClusterProvider.GKE and hosts.published(config):
            controller_values = {ingress.TRAEFIK_RELEASE: {"service": {"spec": {
                "loadBalancerIP": cluster.require_output(INGRESS_ADDRESS_OUTPUT)}}}}
    else:
        provider = k8s.Provider("kubernetes", context=config.kube_context or None)
    # No `delete_unreachable`: set on the provider it outlives every `up`, and a refresh while the API
    # server is briefly down would then drop every resource from the state. `cd4ml down` sets it (as
    # PULUMI_K8S_DELETE_UNREACHABLE) for a cluster that is gone, and only then.
    on_cluster = pulumi.ResourceOptions(providers=[provider])
    namespaces = Namespaces("namespaces", platform.namespaces, platform.pod_security, opts=on_cluster)
    apps_part, network_part = platform.extra(APPS), platform.extra(NETWORK)
    passwords = GeneratedPasswords("passwords", platform.generated_passwords)

    # Default-deny and every allow rule exist before anything runs: a configure Job never starts
    # in a namespace whose policies are half-made.
    network = NetworkPolicies(network_part.name, ServiceArgs(service=network_part, passwords=passwords.values,
                                                             namespaces=namespaces.by_name),
                              opts=pulumi.ResourceOptions.merge(on_cluster, pulumi.ResourceOptions(
                                  depends_on=[namespaces])))
    created: dict[str, ServiceComponent] = {}
    for name, service in platform.services.items():
        waits_for = [*namespaces.of(service.placed_in), network, *(created[before] for before in service.after)]
        created[name] = COMPONENTS[name](
            name, ServiceArgs(service=service, passwords=passwords.values, namespaces=namespaces.by_name),
            opts=pulumi.ResourceOptions.merge(on_cluster, pulumi.ResourceOptions(depends_on=waits_for)))
    AppEnvironments(apps_part.name, ServiceArgs(service=apps_part, passwords=passwords.values,
                                                namespaces=namespaces.by_name),
                    opts=pulumi.ResourceOptions.merge(on_cluster, pulumi.ResourceOptions(
                        depends_on=[*namespaces.of(apps_part.placed_in), network])))
    published = None
    if part := platform.optional_extra(ingress.NAME):
        published = Ingress(part.name, ServiceArgs(service=part, passwords=passwords.values,
                                                   release_values=controller_values, namespaces=namespaces.by_name),
                            opts=pulumi.ResourceOptions.merge(on_cluster, pulumi.ResourceOptions(
                                depends_on=[*namespaces.of(part.placed_in), network])))

    pulumi.export("services", {name: component.outputs() for name, component in created.items()})
    # Which cluster this stack runs on, for `cd4ml smoke` and `status` (not the current kube context).
    pulumi.export(KUBE_TARGET_OUTPUT, {"context": config.kube_context or None,
                                       "clusterStack": config.cluster_stack or None})
    pulumi.export("platform", PlatformDocument.of(platform).to_json())
    # For `cd4ml up` and `status`: where the wildcard DNS record of the published services must point.
    pulumi.export("ingress", {"address": published.address, "domain": published.domain} if published else None)
    # For `cd4ml handout`: each participant's one password (GoCD, Kibana, Grafana, MLflow), a secret in the state.
    pulumi.export("participant_passwords", pulumi.Output.secret(pulumi.Output.all(
        **{t.name: passwords.values[t.password.id] for t in platform.tenants})))
