"""The kit's Pulumi stacks through the Automation API, on the local file backend: opening them, what
their checkpoints say is deployed, their outputs, the stack file kept free of Pulumi's secrets
settings, where each stack's cluster is and whether it answers."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from rich.console import Console

from infra.cli import tools
from infra.cli.errors import LifecycleError
from infra.cluster import CLUSTER_PROJECT, cluster_stack_reference
from infra.config import CLUSTER_STACK_ENV, KUBE_CONTEXT_ENV, KUBE_TARGET_OUTPUT, PROJECT, StackConfig

if TYPE_CHECKING:
    from infra.smoke.cluster import KubeTarget


PASSPHRASE_FILE = Path.home() / ".config" / "cd4ml" / "pulumi-passphrase"


def current_kube_context(kubeconfig: str | None = None) -> str | None:
    """The kubeconfig's current context, read as a file: no kubectl needed."""
    paths = (kubeconfig or os.environ.get("KUBECONFIG") or str(Path.home() / ".kube" / "config")).split(os.pathsep)
    for path in paths:
        try:
            document = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError):
            continue
        if document.get("current-context"):
            return str(document["current-context"])
    return None


def cluster_cost(project: Path, stack_name: str) -> str | None:
    """`cd4ml status`'s line about the cloud cluster: nodes and an hourly estimate (kit's price table)."""
    from infra.platform.sizing import hourly_usd

    if not cluster_deployed(project, stack_name):
        return None
    outputs = {k: v.value for k, v in open_stack(project, stack_name, work_dir=project / "cluster").outputs().items()}
    provider = outputs.get("provider")
    if provider not in ("gke", "eks"):
        return f"cluster: local {provider or 'kind'} (no cloud cost)"
    nodes, machine = int(outputs["nodeCount"]), outputs["machineType"]
    return (f"cluster: {provider.upper()}, {nodes} × {machine}, about ${hourly_usd(provider, machine, nodes):.2f}/hour "
            "(on-demand list prices, infra/platform/sizing.py; `cd4ml down --cluster` stops it)")


def automation():
    from pulumi import automation as auto

    return auto


def cluster_deployed(project: Path, stack_name: str) -> bool:
    """Whether the kit's cluster stack holds a cluster now (not merely a stack whose cluster was destroyed)."""
    return stack_has_resources(project, CLUSTER_PROJECT, stack_name)


def stack_has_resources(project: Path, pulumi_project: str, stack_name: str) -> bool:
    """Whether the local file backend's checkpoint of this stack lists anything deployed, read as a file
    (no Pulumi CLI). A destroy without `stack rm` leaves the checkpoint behind with no resources in it;
    the stack itself, its providers and components deploy nothing."""
    checkpoint = state_dir(project) / ".pulumi" / "stacks" / pulumi_project / f"{stack_name}.json"
    try:
        document = json.loads(checkpoint.read_text())
    except (OSError, ValueError):
        return False
    resources = ((document.get("checkpoint") or {}).get("latest") or {}).get("resources") or []
    return any(not r.get("type", "").startswith(("pulumi:pulumi:Stack", "pulumi:providers:", "cd4ml:"))
               for r in resources if isinstance(r, dict))


def passphrase_file() -> Path:
    """Generated once per user, outside the repository; never printed."""
    if not PASSPHRASE_FILE.exists():
        PASSPHRASE_FILE.parent.mkdir(parents=True, exist_ok=True)
        PASSPHRASE_FILE.write_text(secrets.token_urlsafe(32))
        PASSPHRASE_FILE.chmod(0o600)
    return PASSPHRASE_FILE


def state_dir(project: Path) -> Path:
    return project / ".pulumi-state"


def deployed(project: Path, stack_name: str) -> bool:
    """Whether the platform stack has anything deployed (no Pulumi CLI needed to ask)."""
    return stack_has_resources(project, PROJECT, stack_name)


def open_stack(project: Path, stack_name: str, create: bool = False, work_dir: Path | None = None,
               program_env: dict[str, str] | None = None):
    """A stack through the Automation API, on the local file backend: the platform's (the project
    root), or the cluster's (`cluster/`). `program_env` reaches the program (where the platform runs:
    see `platform_env`)."""
    from pulumi import automation as auto

    pulumi_cmd = tools.ensure_pulumi(project, Console(stderr=True))
    state = state_dir(project)
    state.mkdir(exist_ok=True)
    work_dir = work_dir or project
    env = {
        "PULUMI_BACKEND_URL": f"file://{state}",
        "PULUMI_CONFIG_PASSPHRASE_FILE": str(passphrase_file()),
        "PULUMI_SKIP_UPDATE_CHECK": "true",
        **(program_env or {}),
    }
    workspace = auto.LocalWorkspaceOptions(work_dir=str(work_dir), pulumi_command=pulumi_cmd, env_vars=env)
    if create:
        tracked = project / "stacks" / f"Pulumi.{stack_name}.yaml"
        before = tracked.read_bytes() if work_dir == project and tracked.exists() else None
        stack = auto.create_or_select_stack(stack_name=stack_name, work_dir=str(work_dir), opts=workspace)
        if before is not None:
            keep_secrets_settings_out_of(tracked, before, stack_config_copy(project, stack_name))
        return stack
    try:
        return auto.select_stack(stack_name=stack_name, work_dir=str(work_dir), opts=workspace)
    except auto.StackNotFoundError:
        raise LifecycleError(f"stack '{stack_name}' is not deployed (no state in {state}): run `cd4ml up` first") \
            from None


SECRETS_SETTINGS = ("encryptionsalt", "secretsprovider", "encryptedkey")
"""What Pulumi writes into a stack's config file when it creates the stack (the passphrase's salt)."""


def keep_secrets_settings_out_of(tracked: Path, before: bytes, copy: Path) -> None:
    """`pulumi stack init` writes `encryptionsalt` into the stack's config file, which is the user's and
    tracked by git (pulumi/pulumi pkg/cmd/pulumi/stack/io.go, CreateStack saves the project stack): move
    what it wrote into the kit's copy and give the user's file back byte for byte."""
    after = tracked.read_bytes()
    if after == before:
        return
    written = yaml.safe_load(after) or {}
    settings = {key: written[key] for key in SECRETS_SETTINGS if written.get(key)}
    copy.parent.mkdir(parents=True, exist_ok=True)
    copy.write_text(before.decode().rstrip("\n") + "\n" + yaml.safe_dump(settings, sort_keys=False))
    tracked.write_bytes(before)


def stack_config_copy(project: Path, stack_name: str) -> Path:
    return state_dir(project) / "stack-config" / f"Pulumi.{stack_name}.yaml"


def platform_config_file(project: Path, stack_name: str) -> str:
    """The file every engine operation on the platform stack reads its config from (`--config-file`):
    the user's stacks/Pulumi.<stack>.yaml as it is now, plus the secrets settings Pulumi made for it,
    which live beside the state, never in the tracked file. The operations also pass
    `show_secrets=False`: the Automation API's summary after up/refresh/destroy runs `stack history
    --show-secrets`, which reads the stack file from its default place, finds no salt, makes one and
    writes it there (seen on the real engine, tests/test_envtest_lifecycle.py)."""
    copy = stack_config_copy(project, stack_name)
    text = (project / "stacks" / f"Pulumi.{stack_name}.yaml").read_text()
    theirs = yaml.safe_load(text) or {}
    kept = (yaml.safe_load(copy.read_text()) or {}) if copy.exists() else {}
    # The user's text verbatim (a YAML round trip would rewrite their values), then the salt after it.
    added = {key: kept[key] for key in SECRETS_SETTINGS if kept.get(key) and not theirs.get(key)}
    copy.parent.mkdir(parents=True, exist_ok=True)
    copy.write_text(text.rstrip("\n") + "\n" + (yaml.safe_dump(added, sort_keys=False) if added else ""))
    return str(copy)


def platform_env(project: Path, stack_name: str, config: StackConfig, context: str) -> dict[str, str]:
    """Where the platform runs, for the program: the kit's cluster stack (its kubeconfig crosses by a
    stack reference), or the kube context `up` chose — recorded, so the stack keeps deploying to, and
    `smoke`/`status` keep checking, that cluster whatever the current context later is. A context set
    in the stack file wins over a cluster stack left from another day."""
    if not config.kube_context and cluster_deployed(project, stack_name):
        return {CLUSTER_STACK_ENV: cluster_stack_reference(stack_name)}
    return {KUBE_CONTEXT_ENV: context} if context and not config.kube_context else {}


def kube_target(project: Path, stack_name: str, config: StackConfig | None = None) -> KubeTarget:
    """The cluster this stack deployed to, as its outputs record it; before any `up`, the stack's
    configured context (or the current one)."""
    from infra.smoke.cluster import KubeTarget

    configured = (config.kube_context if config else "") or None
    if not deployed(project, stack_name):
        return KubeTarget(context=configured)
    recorded = stack_outputs(project, stack_name).get(KUBE_TARGET_OUTPUT) or {}
    if recorded.get("clusterStack"):
        outputs = open_stack(project, stack_name, work_dir=project / "cluster").outputs()
        if "kubeconfig" not in outputs:
            raise LifecycleError(f"the cluster stack {recorded['clusterStack']} has no kubeconfig: is the cluster "
                                 f"still there? (`cd4ml up --stack {stack_name}` recreates it)")
        return KubeTarget(kubeconfig=yaml.safe_load(outputs["kubeconfig"].value),
                          context=recorded.get("context") or None)
    return KubeTarget(context=recorded.get("context") or configured)


def _api_client(target: KubeTarget) -> Any:
    """A Kubernetes API client for `target` alone, with the kubeconfig named now (the client fixes its
    default location when it is imported)."""
    from kubernetes import config as kube_config

    return (kube_config.new_client_from_config_dict(target.kubeconfig, context=target.context)
            if target.kubeconfig else kube_config.new_client_from_config(
                config_file=os.environ.get("KUBECONFIG") or None, context=target.context))


def cluster_answers(target: KubeTarget, timeout: float) -> tuple[bool, str]:
    """Whether the cluster's API server is there: it answers GET /version (even with a refusal: a 401
    or 403 is a live server) within `timeout`, polled with backoff; and what was seen last. Only a
    cluster that cannot be reached — a connection refused or timing out, or a context its kubeconfig no
    longer has (kind removes it with the cluster) — counts as gone; anything else stops, since `down`
    drops a gone cluster's resources from the state."""
    from kubernetes import client
    from kubernetes.config.config_exception import ConfigException
    from urllib3.exceptions import HTTPError

    from infra.polling import Observation, WaitTimeout, poll_until

    undecided: list[str] = []

    def look() -> Observation[str]:
        try:
            api = _api_client(target)
        except ConfigException as failure:
            if "not found" in str(failure) or "Invalid kube-config" in str(failure):
                return Observation(False, seen=f"no such cluster in the kubeconfig: {failure}")
            undecided.append(f"{type(failure).__name__}: {failure}")
            return Observation(True)
        try:
            with api:
                answer = client.VersionApi(api).get_code(_request_timeout=5, _preload_content=False)
                version = json.loads(answer.data or b"{}").get("gitVersion", "?")
        except client.ApiException as refused:
            return Observation(True, f"HTTP {refused.status}", f"HTTP {refused.status}")
        except (HTTPError, OSError) as unreachable:
            return Observation(False, seen=str(getattr(unreachable, "reason", None) or unreachable))
        except Exception as failure:  # noqa: BLE001 - a credential plugin, a proxy: not a verdict on the cluster
            undecided.append(f"{type(failure).__name__}: {failure}")
            return Observation(True)
        return Observation(True, version, version)

    import logging

    # The client's retries and credential plugins log to the root logger; the verdict is printed instead.
    quiet = {name: logging.getLogger(name).level for name in ("", "urllib3")}
    for name in quiet:
        logging.getLogger(name).setLevel(logging.CRITICAL)
    try:
        seen = poll_until(look, what=f"the API server of {target}", timeout=timeout, max_interval=5.0)
    except WaitTimeout as timed_out:
        return False, timed_out.last_seen[:200]
    finally:
        for name, level in quiet.items():
            logging.getLogger(name).setLevel(level)
    if undecided:
        raise LifecycleError(f"cannot tell whether the cluster ({target}) is there: {undecided[-1][:200]}; "
                             "fix the kubeconfig or its credentials and run the command again")
    return True, str(seen)


def platform_volumes(target: KubeTarget, namespace_prefix: str) -> list[str]:
    """The PersistentVolumes still bound to claims of the platform's namespaces, as `name (disk)`: a cloud
    disk is deleted by its CSI driver after its claim, so deleting the cluster before they are gone
    leaves the disks behind, billed."""
    from kubernetes import client

    with _api_client(target) as api:
        volumes = client.CoreV1Api(api).list_persistent_volume(_request_timeout=10).items
    left = []
    for volume in volumes:
        claim = volume.spec.claim_ref
        if claim and (claim.namespace or "").startswith(f"{namespace_prefix}-"):
            disk = volume.spec.csi.volume_handle if volume.spec.csi else "local"
            left.append(f"{volume.metadata.name} ({claim.namespace}/{claim.name}, disk {disk})")
    return left


def target_of(project: Path, stack_name: str, program_env: dict[str, str], context: str) -> KubeTarget:
    """Where `up` is about to deploy, as the program will see it."""
    from infra.smoke.cluster import KubeTarget

    if CLUSTER_STACK_ENV in program_env:
        outputs = open_stack(project, stack_name, work_dir=project / "cluster").outputs()
        return KubeTarget(kubeconfig=yaml.safe_load(outputs["kubeconfig"].value))
    return KubeTarget(context=program_env.get(KUBE_CONTEXT_ENV) or context or None)


def stack_outputs(project: Path, stack_name: str) -> dict:
    """The deployed stack's outputs, secrets decrypted (for handouts; never printed)."""
    if not deployed(project, stack_name):
        raise LifecycleError(f"stack '{stack_name}' is not deployed (no state in {state_dir(project)})")
    return {name: output.value for name, output in open_stack(project, stack_name).outputs().items()}


def engine_call(action: str, stack_name: str, project: Path, call):
    from pulumi import automation as auto

    try:
        return call()
    except auto.ConcurrentUpdateError:
        raise LifecycleError(f"another update of stack '{stack_name}' is running; wait for it or "
                             f"run `pulumi cancel` in {project}") from None
    except auto.StackNotFoundError:
        raise LifecycleError(f"stack '{stack_name}' is not deployed: run `cd4ml up` first") from None
    except auto.CommandError as failure:
        lines = [line.strip().removeprefix("stderr:").removeprefix("stdout:").strip()
                 for line in str(failure).splitlines()]
        first = next((line for line in lines if "error" in line.lower()), str(failure).strip()[:300])
        raise LifecycleError(f"pulumi {action} failed for stack '{stack_name}': {first}"
                             " (run again with --verbose for the engine's output)") from None
