"""What the Kubernetes API alone shows of the platform: each service's login Secret, the network
policies the wiring graph gives every namespace, and whether the API server admits every pod the kit
declares itself (the agents' pod, the smoke probes: Pod Security, quotas and LimitRanges decide, by a
server-side dry run). They run in every cluster mode, and they are what `--api-only` checks on a cluster
whose pods run nothing (envtest)."""

from __future__ import annotations

from infra.smoke.core import Check, CheckFailed, Diagnosis, Skip, SmokeContext


def credentials(context: SmokeContext) -> str:
    """Every service's login Secret is there with both its keys filled (the values are never shown)."""
    checked = 0
    for service in context.platform.services:
        if not service.credentials_secret or not service.credentials_keys:
            continue
        namespace, secret = service.credentials_secret.split("/", 1)
        data = context.cluster.read_secret(namespace, secret)
        empty = [key for key in service.credentials_keys.values() if not data.get(key)]
        if empty:
            raise CheckFailed(Diagnosis(
                service.name, f"Secret {namespace}/{secret}", f"keys {sorted(service.credentials_keys.values())}",
                f"missing or empty: {empty}", "the Secret was edited by hand or the kit's GeneratedPasswords failed: "
                "`cd4ml up` puts it back"))
        checked += 1
    return f"{checked} login Secrets in place"


def network_policies(context: SmokeContext) -> str:
    """Every NetworkPolicy the wiring graph gives a namespace is in the cluster (none deleted by hand)."""
    wanted = context.platform.network_policies
    if not wanted:
        raise Skip("the platform document names no network policies")
    for namespace, names in wanted.items():
        missing = sorted(set(names) - context.cluster.network_policy_names(namespace))
        if missing:
            raise CheckFailed(Diagnosis(
                "platform", f"NetworkPolicies in {namespace}", f"{len(names)} policies", f"missing: {missing}",
                "deleted by hand (a wire then opens or closes): `cd4ml up` refreshes and puts them back"))
    return f"{sum(len(n) for n in wanted.values())} policies in {len(wanted)} namespaces"


def admission(context: SmokeContext) -> str:
    """The API server admits every pod the kit declares itself (dry run: nothing is created)."""
    if not context.declared_pods:
        raise Skip("no pods declared by the kit in this platform")
    for pod in context.declared_pods:
        refusal = context.cluster.refusal(pod)
        if refusal:
            where = f"{pod['metadata']['namespace']}/{pod['metadata']['name']}"
            raise CheckFailed(Diagnosis(
                "platform", f"pod {where} (dry run)", "admitted", refusal,
                "the namespace's Pod Security level, ResourceQuota or LimitRange refuses what the kit runs there"))
    return f"{len(context.declared_pods)} pods admitted"


CHECKS = (
    Check("platform.credentials", "platform", credentials, needs_cluster=True, api_only=True),
    Check("platform.network-policies", "platform", network_policies, needs_cluster=True, api_only=True),
    Check("platform.admission", "platform", admission, needs_cluster=True, api_only=True),
)
