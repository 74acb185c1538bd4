"""`cd4ml up`, `down` and the cluster they run on: from a fresh machine with Docker to a running platform.

With no kube context, a local kind cluster is created (as the kit's cluster stack); on gke/eks the cloud
cluster is. The steps live beside this module:

    tools      the pinned kind, the Pulumi CLI and its plugins, the policy pack's venv (`.tools/`)
    images     the kit's own images, built and delivered where the cluster pulls from
    stacks     the stacks through the Automation API (state in `.pulumi-state/`, the secrets passphrase
               generated once outside the repository), their checkpoints, outputs and clusters
    progress   the engine's events as kind-style steps
    dns        the front door's record (exposure 'ingress')
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

from rich.console import Console

from infra.cli import dns, images, stacks, tools
from infra.cli.errors import LifecycleError
from infra.cli.progress import EngineProgress
from infra.cluster import KIND_CLUSTER, KIND_NODE_IMAGE, cluster_stack_reference
from infra.config import ClusterProvider, StackConfig
from infra.platform import hosts, ingress
from infra.policies import pack_config


def ensure_cluster(project: Path, config: StackConfig, console: Console,
                   run: Callable[..., subprocess.CompletedProcess] = subprocess.run, stack_name: str = "local") -> str:
    """The kube context to deploy to: the configured one, the kit's cluster stack if it exists, the
    current one, or a new kind cluster — created as the cluster stack, so `down --cluster` removes it."""
    if config.kube_context:
        return config.kube_context
    if config.cluster_provider is not ClusterProvider.EXISTING:
        tools.ensure_cloud_packages(config, console, run)
        return ensure_cloud_cluster(project, config, console, stack_name)
    if stacks.cluster_deployed(project, stack_name):
        console.print(f" • using the kit's kind cluster (stack {cluster_stack_reference(stack_name)})")
        return f"kind-{KIND_CLUSTER}"
    recorded = stacks.kube_target(project, stack_name).context if stacks.deployed(project, stack_name) else None
    if recorded:
        # Where the stack runs: switching the current context must not move (orphan) the platform.
        console.print(f" • using kube context '{recorded}' (where stack '{stack_name}' runs)")
        return recorded
    context = stacks.current_kube_context()
    if context:
        console.print(f" • using kube context '{context}'")
        return context
    if not tools.docker_available(run):
        raise LifecycleError(
            "no kube context is configured and Docker is not running, so no local cluster can be created. "
            "Start Docker (kind runs Kubernetes in it), or point kubectl at a cluster, "
            "or set cd4ml:kubeContext in the stack file.")
    kind = tools.ensure_kind(project, console, run)
    console.print(f" • creating kind cluster '{KIND_CLUSTER}' ({KIND_NODE_IMAGE}) as stack "
                  f"{cluster_stack_reference(stack_name)}")
    cluster = stacks.open_stack(project, stack_name, create=True, work_dir=project / "cluster")
    cluster.set_config("kindBinary", stacks.automation().ConfigValue(value=kind))
    tools.ensure_plugins(cluster, console)
    stacks.engine_call("up (cluster)", stack_name, project,
                       lambda: cluster.up(color="never", on_output=lambda line: None))
    console.print(f" [green]✓[/green] kind cluster '{KIND_CLUSTER}'")
    return f"kind-{KIND_CLUSTER}"


def ensure_cloud_cluster(project: Path, config: StackConfig, console: Console, stack_name: str) -> str:
    """Create (or resize) the GKE/EKS cluster stack, sized for the stack's participants. Returns no
    context: the platform reaches the cluster through the cluster stack's kubeconfig."""
    from infra.platform.build import build_platform
    from infra.platform.sizing import plan_nodes

    provider = config.cluster_provider.value
    plan = plan_nodes(build_platform(config, stack_name), provider, config.machine_type)
    console.print(f" • {provider.upper()} cluster {cluster_stack_reference(stack_name)}: {plan.nodes} × "
                  f"{plan.machine.name} for {plan.participants or 1} team(s), limited by {plan.limited_by}; "
                  f"about ${plan.usd_per_hour:.2f}/hour while it exists")
    cluster = stacks.open_stack(project, stack_name, create=True, work_dir=project / "cluster")
    settings = {"provider": provider, "project": config.cloud_project, "region": config.cloud_region,
                "machineType": plan.machine.name, "nodeCount": str(plan.nodes),
                "workshopDays": ",".join(config.workshop_days)}
    for key, value in settings.items():
        cluster.set_config(key, stacks.automation().ConfigValue(value=value))
    tools.ensure_plugins(cluster, console)
    stacks.engine_call("up (cluster)", stack_name, project,
                       lambda: cluster.up(color="never", on_output=lambda line: None))
    console.print(f" [green]✓[/green] {provider.upper()} cluster ready")
    return ""


CLUSTER_ANSWER_TIMEOUT = 120.0
"""How long `up` waits for the API server before refreshing against it."""
CLUSTER_GONE_TIMEOUT = 20.0
VOLUMES_RELEASED_TIMEOUT = 300.0
"""How long `down --cluster` waits for the platform's volumes (and so its cloud disks) to be deleted."""
"""How long `down` gives the API server before it takes the cluster for gone."""
DELETE_UNREACHABLE_ENV = "PULUMI_K8S_DELETE_UNREACHABLE"
"""Read by pulumi-kubernetes' Configure when the provider's own `deleteUnreachable` is unset; set only by
`down` on a cluster that is gone: on every `up` it would drop the whole state when the API server
blinks (provider.go Read: an unreachable cluster and the option mean 'deleted')."""


SKIP_CHECKPOINTS_ENV = "PULUMI_SKIP_CHECKPOINTS"
"""Pulumi's engine rewrites the whole state file after every step of an update (sdk env.go SkipCheckpoints,
pulumi#10668): 90 % of the engine's CPU in `up` for a workshop of 30 (157 s of 181, measured on envtest),
growing with the square of the resources. Set, the state is saved once, at the end."""


def up(project: Path, stack_name: str, config: StackConfig, console: Console, verbose: bool = False,
       skip_checkpoints: bool = False) -> dict:
    # kind makes its new cluster the current context, which the Kubernetes provider then uses.
    from infra.cli.charts import local_chart_problems
    from infra.platform.build import build_platform

    problems = local_chart_problems(build_platform(config, stack_name))
    if problems:
        raise LifecycleError(f"chartsDir ({config.charts_dir}) does not hold the pinned charts: {'; '.join(problems)}. "
                             f"Where there is internet: cd4ml charts --stack {stack_name} --pull {config.charts_dir}")
    if os.environ.pop(DELETE_UNREACHABLE_ENV, None) is not None:
        # pulumi_kubernetes' Provider reads it when the program runs and stores it on the provider,
        # where it would outlive this `up` (and a stored false would defeat `down` on a gone cluster).
        console.print(f" • {DELETE_UNREACHABLE_ENV} is set in your environment: ignored by `up`")
    context = ensure_cluster(project, config, console, stack_name=stack_name)
    images.deliver_kit_images(config, context, console, project=project)
    program_env = stacks.platform_env(project, stack_name, config, context)
    if skip_checkpoints:
        program_env[SKIP_CHECKPOINTS_ENV] = "true"
        console.print(" • the state is saved once, at the end of this update (--skip-checkpoints): interrupted, "
                      "it would not know what it created; run `cd4ml down` then `up` again")
    # Refreshing against an API server that is not up yet (Docker restarting, a node still booting)
    # fails the whole update: give it time first, and say what it answered.
    target = stacks.target_of(project, stack_name, program_env, context)
    answers, seen = stacks.cluster_answers(target, CLUSTER_ANSWER_TIMEOUT)
    if not answers:
        raise LifecycleError(f"the cluster ({target}) did not answer within {CLUSTER_ANSWER_TIMEOUT:.0f}s; last seen: "
                             f"{seen}. Is Docker (or the cluster) running? Then run `cd4ml up` again")
    tools.check_policy_pack_venv()
    stack = stacks.open_stack(project, stack_name, create=True, program_env=program_env)
    tools.ensure_plugins(stack, console)
    config_file = stacks.platform_config_file(project, stack_name)
    console.print(f" • pulumi up (stack '{stack_name}', state in {stacks.state_dir(project)})")
    progress = EngineProgress(console, verbose)
    # The kit's policy pack (policy/, rules in infra/policies.py) checks every resource before it is created.
    policy_config = stacks.state_dir(project) / f"policy-config-{stack_name}.json"
    policy_config.parent.mkdir(parents=True, exist_ok=True)
    policy_config.write_text(json.dumps(pack_config(
        config.profile.value, (ingress.TRAEFIK_RELEASE,) if hosts.published(config) else ())))
    # refresh: what was changed or deleted on the cluster by hand is seen, and put back.
    try:
        result = stacks.engine_call("up", stack_name, project, lambda: stack.up(
            on_output=progress.output, on_event=progress.event, color="never", refresh=True,
            policy_packs=[str(tools.POLICY_PACK_DIR)], policy_pack_configs=[str(policy_config)],
            config_file=config_file, show_secrets=False))
    finally:
        progress.close()
    console.print(f"[green]✓[/green] platform up: {result.summary.result}")
    check_idempotent(stack, console, config_file)
    outputs = {name: output.value for name, output in result.outputs.items()}
    services = outputs.get("services") or {}
    for name, service in services.items():
        console.print(f"  • {name:<14} {service.get('url')}")
    for line in dns.front_door(outputs):
        console.print(line)
    return services


def check_idempotent(stack, console: Console, config_file: str | None = None) -> bool:
    """A preview right after `up` must expect no changes; if it does, something the kit declares
    does not converge, and every future `up` would touch it. Reported, not fatal: the platform is up."""
    from pulumi import automation as auto

    try:
        stack.preview(expect_no_changes=True, color="never", on_output=lambda line: None, config_file=config_file)
    except auto.CommandError as drift:
        text = "\n".join(filter(None, (getattr(drift, "stdout", ""), getattr(drift, "stderr", ""), str(drift))))
        lines = (line.strip().removeprefix("stdout:").strip() for line in text.splitlines())
        changed = next((line for line in lines if line.startswith(("~", "+ ", "- ", "+-"))), "see `pulumi preview`")
        console.print(f" [yellow]![/yellow] a second `up` would change something ({changed}): the kit's declared "
                      "state does not converge; please report it")
        return False
    console.print(" [green]✓[/green] a second `up` would change nothing")
    return True


def _wait_for_volumes_released(project: Path, stack_name: str, target: object, console: Console) -> None:
    """Before the cluster goes: the platform's claims are deleted, but their volumes (cloud disks) are
    deleted by the CSI driver afterwards, which it cannot do once the cluster is gone. Waits, then names
    what is left rather than failing: the facilitator deletes those disks by hand."""
    from infra.config import load_stack
    from infra.polling import Observation, WaitTimeout, poll_until

    prefix = load_stack(project / "stacks", stack_name).namespace_prefix

    def look() -> Observation[list[str]]:
        left = stacks.platform_volumes(target, prefix)  # type: ignore[arg-type]
        return Observation(not left, left, f"{len(left)} volume(s): {', '.join(left[:3])}")

    try:
        poll_until(look, what="the platform's volumes to be deleted", timeout=VOLUMES_RELEASED_TIMEOUT,
                   max_interval=10.0)
    except WaitTimeout as timeout:
        console.print(f" [yellow]![/yellow] the platform's volumes were not all deleted within "
                      f"{VOLUMES_RELEASED_TIMEOUT:.0f}s ({timeout.last_seen}): their disks outlive the cluster and "
                      "are billed; delete them in the cloud console")


def down(project: Path, stack_name: str, console: Console, delete_cluster: bool = False, verbose: bool = False,
         run: Callable[..., subprocess.CompletedProcess] = subprocess.run, skip_checkpoints: bool = False) -> None:
    """Destroy the platform stack, then the kind cluster if asked. A cluster that is already gone (or
    does not answer) cannot have anything deleted from it: its resources are then dropped from the
    state, which pulumi-kubernetes does only on a refresh, for Helm releases too (its Delete refuses a
    release on an unreachable cluster: provider/pkg/provider/provider.go, pulumi-kubernetes#2675)."""
    live_target = None
    if stacks.deployed(project, stack_name):
        try:
            target = stacks.kube_target(project, stack_name)
            answers, seen = stacks.cluster_answers(target, CLUSTER_GONE_TIMEOUT)
        except LifecycleError as why:
            if "has no kubeconfig" not in str(why):
                raise
            target, answers, seen = "its cluster stack's", False, "the cluster stack holds no cluster"
        program_env = {} if answers else {DELETE_UNREACHABLE_ENV: "true"}
        if skip_checkpoints:
            program_env[SKIP_CHECKPOINTS_ENV] = "true"
        stack = stacks.open_stack(project, stack_name, program_env=program_env)
        config_file = stacks.platform_config_file(project, stack_name)
        progress = EngineProgress(console, verbose)
        try:
            if not answers:
                console.print(f" [yellow]![/yellow] the cluster ({target}) does not answer ({seen}): the platform's "
                              "resources are dropped from the state, not deleted")
                stacks.engine_call("refresh", stack_name, project, lambda: stack.refresh(
                    on_output=progress.output, on_event=progress.event, color="never", config_file=config_file,
                    show_secrets=False))
            stacks.engine_call("destroy", stack_name, project, lambda: stack.destroy(
                on_output=progress.output, on_event=progress.event, color="never", config_file=config_file,
                show_secrets=False))
        finally:
            progress.close()
        console.print(f"[green]✓[/green] platform '{stack_name}' destroyed")
        live_target = target if answers and not isinstance(target, str) else None
    else:
        console.print(f" • stack '{stack_name}' is not deployed: nothing to destroy")
    if not delete_cluster:
        return
    if live_target is not None:
        _wait_for_volumes_released(project, stack_name, live_target, console)
    if stacks.cluster_deployed(project, stack_name):
        cluster = stacks.open_stack(project, stack_name, work_dir=project / "cluster")
        stacks.engine_call("destroy (cluster)", stack_name, project, lambda: cluster.destroy(
            color="never", on_output=lambda line: None))
    else:  # a cluster from before the kit kept it as a stack, or made by hand with the kit's name
        result = run([tools.ensure_kind(project, console, run), "delete", "cluster", "--name", KIND_CLUSTER], text=True)
        if result.returncode != 0:
            raise LifecycleError(f"kind could not delete cluster '{KIND_CLUSTER}' (exit {result.returncode})")
    console.print(f"[green]✓[/green] kind cluster '{KIND_CLUSTER}' deleted")
