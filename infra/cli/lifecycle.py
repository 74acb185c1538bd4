"""`cd4ml up`: from a fresh machine with Docker to a running platform.

Tools the kit needs are installed into the project (`.tools/`), pinned: the Pulumi CLI (through
the Automation API's own installer) and kind. With no kube context, a local kind cluster is
created. State lives in a local file backend (`.pulumi-state/`, git-ignored); the secrets
passphrase is generated once into a file outside the repository.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import os
import platform as host
import secrets
import shutil
import socket
import stat
import subprocess
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

import yaml
from rich.console import Console

from infra.cluster import CLUSTER_PROJECT, KIND_CLUSTER, KIND_NODE_IMAGE, KIND_VERSION, cluster_stack_reference
from infra.config import CLUSTER_STACK_ENV, KUBE_CONTEXT_ENV, KUBE_TARGET_OUTPUT, PROJECT, ClusterProvider, StackConfig
from infra.document import PlatformDocument
from infra.paths import REPO_ROOT
from infra.platform import hosts, ingress
from infra.platform.kit_images import KIT_IMAGES, KitImage
from infra.policies import pack_config

if TYPE_CHECKING:
    from infra.smoke.cluster import KubeTarget

PULUMI_VERSION = "3.272.0"
"""The Pulumi CLI released with the pinned Python SDK (they are versioned together)."""
PASSPHRASE_FILE = Path.home() / ".config" / "cd4ml" / "pulumi-passphrase"

POLICY_PACK_DIR = REPO_ROOT / "policy"
"""The kit's Pulumi policy pack; its rules are infra/policies.py."""


def policy_pack_venv() -> Path:
    """The venv the policy pack names, resolved as Pulumi's Python host resolves it: from the pack's folder
    (pulumi-language-python toolchain/pip.go resolveVirtualEnvironmentPath)."""
    options = yaml.safe_load((POLICY_PACK_DIR / "PulumiPolicy.yaml").read_text())["runtime"]["options"]
    return Path(os.path.normpath(POLICY_PACK_DIR / options["virtualenv"]))


def check_policy_pack_venv(run: Callable[..., subprocess.CompletedProcess] = subprocess.run) -> None:
    """Pulumi never creates a local pack's venv, and without it `up` hangs at "Loading policy packs..."
    (seen with pulumi 3.274): say so before starting the engine."""
    venv = policy_pack_venv()
    python = venv / "bin" / "python"
    if not python.exists():
        raise LifecycleError(f"the kit's policy pack runs in {venv}, which does not exist: `make up` creates it "
                             "from requirements.txt (or: python3 -m venv .venv && .venv/bin/pip install -r "
                             "requirements.txt)")
    if run([str(python), "-c", "import pulumi_policy"], capture_output=True, text=True).returncode != 0:
        raise LifecycleError(f"the kit's policy pack runs in {venv}, which lacks pulumi-policy: "
                             f"{python} -m pip install -r requirements.txt")


class LifecycleError(RuntimeError):
    """A step of `up` that cannot go on; the message says what is missing and what to do."""


def tools_dir(project: Path) -> Path:
    return project / ".tools"


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


def docker_available(run: Callable[..., subprocess.CompletedProcess] = subprocess.run) -> bool:
    if shutil.which("docker") is None:
        return False
    result = run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True)
    return result.returncode == 0


def kind_version(binary: str, run: Callable[..., subprocess.CompletedProcess] = subprocess.run) -> str | None:
    """`kind version` prints e.g. `kind v0.32.0 go1.25.4 linux/amd64`."""
    try:
        answer = run([binary, "version"], capture_output=True, text=True)
    except OSError:
        return None
    words = (answer.stdout or "").split()
    return words[1] if answer.returncode == 0 and len(words) > 1 else None


def ensure_kind(project: Path, console: Console | None = None,
                run: Callable[..., subprocess.CompletedProcess] = subprocess.run) -> str:
    """The pinned kind: on PATH if it is that version, else the kit's own in .tools/bin, downloaded
    once (about 10 MB) with its progress shown. Every kind command of the kit runs this binary."""
    on_path = shutil.which("kind")
    if on_path and kind_version(on_path, run) == KIND_VERSION:
        return on_path
    target = tools_dir(project) / "bin" / "kind"
    if not target.exists():
        arch = {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(host.machine(), host.machine())
        url = f"https://kind.sigs.k8s.io/dl/{KIND_VERSION}/kind-{host.system().lower()}-{arch}"
        download(url, target, f"kind {KIND_VERSION}", console or Console(stderr=True))
        target.chmod(target.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return str(target)


def download(url: str, target: Path, what: str, console: Console) -> None:
    """A file fetched to `target` (atomically), with a progress bar on a terminal and one line in CI."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    console.print(f" • downloading {what} from {url}")
    try:
        with urllib.request.urlopen(url, timeout=120) as response, partial.open("wb") as out:  # noqa: S310
            total = int(response.headers.get("Content-Length") or 0) or None
            with Progress("   ", BarColumn(), DownloadColumn(), TransferSpeedColumn(), console=console,
                          disable=not console.is_terminal, transient=True) as progress:
                task = progress.add_task(what, total=total)
                while chunk := response.read(1 << 16):
                    out.write(chunk)
                    progress.advance(task, len(chunk))
    except OSError as failure:
        partial.unlink(missing_ok=True)
        raise LifecycleError(f"could not download {what} from {url}: {failure}") from None
    partial.replace(target)
    console.print(f" [green]✓[/green] {what} ({target.stat().st_size // 2**20} MB) in {target.parent}")


def ensure_pulumi(project: Path, console: Console | None = None):
    """A Pulumi CLI of the pinned version, installed once into .tools/pulumi: the release archive Pulumi's
    own installer fetches (get.pulumi.com/releases/sdk), downloaded here so its progress shows."""
    from pulumi import automation as auto
    from semver import VersionInfo

    wanted = VersionInfo.parse(PULUMI_VERSION)
    root = tools_dir(project) / "pulumi"
    try:
        return auto.PulumiCommand(root=str(root), version=wanted)
    except Exception:  # not installed there yet (the SDK raises plain exceptions here)
        pass
    system = {"Linux": "linux", "Darwin": "darwin"}.get(host.system())
    arch = {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64", "arm64": "arm64"}.get(host.machine().lower())
    if not system or not arch:
        raise LifecycleError(f"no Pulumi CLI release for {host.system()} {host.machine()}: install Pulumi "
                             f"{PULUMI_VERSION} yourself into {root}/bin")
    archive = root / f"pulumi-v{PULUMI_VERSION}-{system}-{arch}.tar.gz"
    download(f"https://get.pulumi.com/releases/sdk/{archive.name}", archive, f"the Pulumi CLI {PULUMI_VERSION} "
             "(about 100 MB, once)", console or Console(stderr=True))
    unpack_pulumi(archive, root / "bin")
    archive.unlink()
    try:
        return auto.PulumiCommand(root=str(root), version=wanted)
    except Exception as failure:
        raise LifecycleError(f"the Pulumi CLI unpacked into {root} does not run: {failure}") from None


def unpack_pulumi(archive: Path, bin_dir: Path) -> None:
    """The release archive holds `pulumi/<binaries>`: they go into `bin_dir`, nothing outside it."""
    import tarfile

    bin_dir.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive) as release:
        for member in release.getmembers():
            parts = Path(member.name).parts
            if len(parts) != 2 or parts[0] != "pulumi" or not member.isfile():
                continue
            target = bin_dir / parts[1]
            partial = target.with_name(target.name + ".part")
            with release.extractfile(member) as source, partial.open("wb") as out:
                shutil.copyfileobj(source, out)
            partial.chmod(0o755)
            partial.replace(target)


def program_venv(work_dir: Path) -> Path:
    """The venv a project's program runs in: its Pulumi.yaml's `virtualenv`, from the project's folder."""
    options = yaml.safe_load((work_dir / "Pulumi.yaml").read_text())["runtime"]["options"]
    return Path(os.path.normpath(work_dir / options["virtualenv"]))


@functools.cache
def required_plugins(venv: Path | None = None) -> list[tuple[str, str]]:
    """(name, version) of the resource plugin of every Pulumi package in the program's venv (this
    interpreter's without one): what Pulumi's Python host asks the engine to install before the
    program runs (pulumi-language-python GetRequiredPackages: every package whose pulumi-plugin.json
    says `resource`, imported or not)."""
    from importlib import metadata

    paths = [str(p) for p in venv.glob("lib/python*/site-packages")] if venv else None
    found = []
    for distribution in metadata.distributions(**({"path": paths} if paths is not None else {})):
        for file in distribution.files or []:
            if file.name == "pulumi-plugin.json":
                plugin = json.loads(file.read_text())
                if plugin.get("resource", False) and plugin.get("name"):
                    found.append((plugin["name"], str(plugin.get("version") or distribution.version).lstrip("v")))
    return sorted(set(found))


def ensure_plugins(stack, console: Console) -> None:
    """Each plugin the engine would download silently inside `up`, fetched first, one line each."""
    import time

    work_dir = getattr(stack.workspace, "work_dir", None)
    venv = program_venv(Path(work_dir)) if work_dir else None
    have = {(p.name, str(p.version).lstrip("v")) for p in stack.workspace.list_plugins() if p.kind == "resource"}
    for name, version in required_plugins(venv):
        if (name, version) in have:
            continue
        console.print(f" • downloading the Pulumi plugin {name} v{version} (once)")
        started = time.monotonic()
        try:
            stack.workspace.install_plugin(name, f"v{version}")
        except Exception as failure:  # noqa: BLE001 - the CLI's error, as one line
            raise LifecycleError(f"could not install the Pulumi plugin {name} v{version}: "
                                 f"{str(failure).strip().splitlines()[-1][:200]}") from None
        console.print(f" [green]✓[/green] plugin {name} v{version} ({time.monotonic() - started:.0f}s)")


def ensure_cloud_packages(config: StackConfig, console: Console,
                          run: Callable[..., subprocess.CompletedProcess] = subprocess.run) -> None:
    """The GKE/EKS stacks' providers, installed into the kit's venv on their first use only: a laptop's
    venv never holds them, as each would be a plugin download before every first `up`."""
    import importlib.util
    import sys

    wanted = {ClusterProvider.GKE: "pulumi_gcp", ClusterProvider.EKS: "pulumi_eks"}.get(config.cluster_provider)
    if wanted is None or importlib.util.find_spec(wanted) is not None:
        return
    requirements = REPO_ROOT / "requirements-cloud.txt"
    console.print(f" • installing the cloud cluster stacks' providers ({requirements.name}) into the kit's venv")
    done = run([sys.executable, "-m", "pip", "install", "--quiet", "-r", str(requirements)], text=True)
    if done.returncode != 0:
        raise LifecycleError(f"pip could not install {requirements} (exit {done.returncode}); see above")


def ensure_cluster(project: Path, config: StackConfig, console: Console,
                   run: Callable[..., subprocess.CompletedProcess] = subprocess.run, stack_name: str = "local") -> str:
    """The kube context to deploy to: the configured one, the kit's cluster stack if it exists, the
    current one, or a new kind cluster — created as the cluster stack, so `down --cluster` removes it."""
    if config.kube_context:
        return config.kube_context
    if config.cluster_provider is not ClusterProvider.EXISTING:
        ensure_cloud_packages(config, console, run)
        return ensure_cloud_cluster(project, config, console, stack_name)
    if cluster_deployed(project, stack_name):
        console.print(f" • using the kit's kind cluster (stack {cluster_stack_reference(stack_name)})")
        return f"kind-{KIND_CLUSTER}"
    recorded = kube_target(project, stack_name).context if deployed(project, stack_name) else None
    if recorded:
        # Where the stack runs: switching the current context must not move (orphan) the platform.
        console.print(f" • using kube context '{recorded}' (where stack '{stack_name}' runs)")
        return recorded
    context = current_kube_context()
    if context:
        console.print(f" • using kube context '{context}'")
        return context
    if not docker_available(run):
        raise LifecycleError(
            "no kube context is configured and Docker is not running, so no local cluster can be created. "
            "Start Docker (kind runs Kubernetes in it), or point kubectl at a cluster, "
            "or set cd4ml:kubeContext in the stack file.")
    kind = ensure_kind(project, console, run)
    console.print(f" • creating kind cluster '{KIND_CLUSTER}' ({KIND_NODE_IMAGE}) as stack "
                  f"{cluster_stack_reference(stack_name)}")
    cluster = open_stack(project, stack_name, create=True, work_dir=project / "cluster")
    cluster.set_config("kindBinary", _auto().ConfigValue(value=kind))
    ensure_plugins(cluster, console)
    _engine_call("up (cluster)", stack_name, project, lambda: cluster.up(color="never", on_output=lambda line: None))
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
    cluster = open_stack(project, stack_name, create=True, work_dir=project / "cluster")
    settings = {"provider": provider, "project": config.cloud_project, "region": config.cloud_region,
                "machineType": plan.machine.name, "nodeCount": str(plan.nodes)}
    for key, value in settings.items():
        cluster.set_config(key, _auto().ConfigValue(value=value))
    ensure_plugins(cluster, console)
    _engine_call("up (cluster)", stack_name, project, lambda: cluster.up(color="never", on_output=lambda line: None))
    console.print(f" [green]✓[/green] {provider.upper()} cluster ready")
    return ""


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


def _auto():
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


def kit_images_for(config: StackConfig) -> list[KitImage]:
    """The kit's own images this stack runs: the ML agent and the model runtime come with GoCD."""
    return list(KIT_IMAGES) if config.enabled("gocd") else []


def deliver_kit_images(config: StackConfig, context: str, console: Console,
                       run: Callable[..., subprocess.CompletedProcess] = subprocess.run,
                       project: Path = REPO_ROOT) -> list[str]:
    """Build the kit's images (once per tag) and put them where the cluster pulls from: pushed to
    `imageRegistry`, or loaded into a local cluster's nodes. Returns the image references."""
    images = kit_images_for(config)
    if not images:
        return []
    refs = [image.image(config).ref for image in images]
    if not docker_available(run):
        if config.image_registry:
            console.print(f" • Docker is not running: assuming {', '.join(refs)} are already in "
                          f"{config.image_registry}")
            return refs
        raise LifecycleError(
            "the kit's own images (" + ", ".join(refs) + ") are built with Docker, and Docker is not running. "
            "Start Docker, or build and push them elsewhere (docker build -f images/<name>/Dockerfile .) "
            "and set cd4ml:imageRegistry.")
    for image, ref in zip(images, refs, strict=True):
        if run(["docker", "image", "inspect", ref], capture_output=True, text=True).returncode != 0:
            console.print(f" • building {ref}")
            built = run(["docker", "build", "--file", str(image.dockerfile), "--tag", ref, str(image.context)],
                        text=True)
            if built.returncode != 0:
                raise LifecycleError(f"docker build of {ref} failed (exit {built.returncode}); see the output above")
        _deliver(ref, config, context, console, run, project)
    return refs


def _deliver(ref: str, config: StackConfig, context: str, console: Console,
             run: Callable[..., subprocess.CompletedProcess], project: Path) -> None:
    if config.image_registry:
        command = ["docker", "push", ref]
    elif context.startswith("kind-"):
        load_into_kind(ref, context.removeprefix("kind-"), ensure_kind(project, console, run), console, run)
        return
    elif context.startswith("k3d-"):
        command = ["k3d", "image", "import", ref, "--cluster", context.removeprefix("k3d-")]
    elif context == "minikube":
        command = ["minikube", "image", "load", ref]
    elif context in ("docker-desktop", "orbstack", "rancher-desktop"):
        return  # the cluster's nodes share the local Docker engine's images
    else:
        raise LifecycleError(
            f"cannot load {ref} into the cluster of context '{context}': set cd4ml:imageRegistry to a registry "
            "the cluster pulls from (the kit pushes its images there)")
    console.print(f" • {' '.join(Path(command[0]).name if i == 0 else part for i, part in enumerate(command))}")
    if run(command, text=True).returncode != 0:
        raise LifecycleError(f"could not deliver {ref} to the cluster: `{' '.join(command)}` failed")


PLATFORM_FORMAT = "{{.Os}}/{{.Architecture}}{{if .Variant}}/{{.Variant}}{{end}}"


def load_into_kind(ref: str, cluster: str, kind: str, console: Console,
                   run: Callable[..., subprocess.CompletedProcess] = subprocess.run) -> None:
    """An image from the local Docker engine into the kind cluster's nodes. With Docker's containerd
    image store (Docker Desktop's default) a pulled image is a multi-platform index whose other
    platforms are absent, and kind's import (`ctr images import --all-platforms`, kind v0.32.0
    pkg/cluster/nodeutils/util.go) fails on them — `kind load docker-image` saves exactly so (kind
    issue #3795). Saving only the image's own platform (`docker image save --platform`, the workaround
    kind documents since PR #4247) and loading that archive works with either store; a Docker too old
    for `--platform` has the classic store, where a plain save works."""
    import tempfile

    platform = run(["docker", "image", "inspect", "--format", PLATFORM_FORMAT, ref],
                   capture_output=True, text=True).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="cd4ml-image-") as scratch:
        archive = str(Path(scratch) / "image.tar")
        saves = ([["docker", "image", "save", "--platform", platform, "--output", archive, ref]] if platform else []) \
            + [["docker", "image", "save", "--output", archive, ref]]
        console.print(f" • docker image save {ref}{f' ({platform})' if platform else ''} | kind load image-archive")
        if not any(run(save, capture_output=True, text=True).returncode == 0 for save in saves):
            raise LifecycleError(f"could not save {ref} from the local Docker engine (`docker image save`)")
        load = [kind, "load", "image-archive", archive, "--name", cluster]
        if run(load, capture_output=True, text=True).returncode != 0:
            raise LifecycleError(f"could not load {ref} into the kind cluster '{cluster}': `{' '.join(load)}` "
                                 "failed; is the cluster up (`kind get clusters`)?")


def preload_images(refs: list[str], console: Console, project: Path | None = None,
                   run: Callable[..., subprocess.CompletedProcess] = subprocess.run) -> None:
    """Pull each image once into the local Docker engine and load it into the kind cluster's nodes,
    so `up` on conference Wi-Fi pulls nothing."""
    if not docker_available(run):
        raise LifecycleError("--preload pulls with Docker, and Docker is not running: start Docker first")
    kind = ensure_kind(project or REPO_ROOT, console, run)
    for ref in refs:
        if run(["docker", "pull", ref], capture_output=True, text=True).returncode != 0:
            raise LifecycleError(f"`docker pull {ref}` failed: is the registry reachable from here?")
        load_into_kind(ref, KIND_CLUSTER, kind, console, run)
        console.print(f" [green]✓[/green] {ref}")


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

    pulumi_cmd = ensure_pulumi(project, Console(stderr=True))
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


def cluster_answers(target: KubeTarget, timeout: float) -> tuple[bool, str]:
    """Whether the cluster's API server is there: it answers GET /version (even with a refusal: a 401
    or 403 is a live server) within `timeout`, polled with backoff; and what was seen last. Only a
    cluster that cannot be reached — a connection refused or timing out, or a context its kubeconfig no
    longer has (kind removes it with the cluster) — counts as gone; anything else stops, since `down`
    drops a gone cluster's resources from the state."""
    from kubernetes import client
    from kubernetes import config as kube_config
    from kubernetes.config.config_exception import ConfigException
    from urllib3.exceptions import HTTPError

    from infra.polling import Observation, WaitTimeout, poll_until

    undecided: list[str] = []

    def look() -> Observation[str]:
        try:
            # The kubeconfig named now (the client fixes its default location when it is imported).
            api = (kube_config.new_client_from_config_dict(target.kubeconfig, context=target.context)
                   if target.kubeconfig else kube_config.new_client_from_config(
                       config_file=os.environ.get("KUBECONFIG") or None, context=target.context))
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


def _target_of(project: Path, stack_name: str, program_env: dict[str, str], context: str) -> KubeTarget:
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


class EngineProgress:
    """Pulumi's engine events as kind-style steps: a line per kit component as it starts and as it is
    done (✓) or fails (✗) — on a terminal the running ones share one spinner line instead; in CI
    (no terminal) plain lines. The engine's own output only with --verbose."""

    def __init__(self, console: Console, verbose: bool = False) -> None:
        self.console, self.verbose = console, verbose
        self.started: set[str] = set()
        self.running: list[str] = []
        self.failed: list[str] = []
        self.spinner = console.status("") if console.is_terminal and not verbose else None

    def close(self) -> None:
        if self.spinner is not None:
            self.spinner.stop()

    def _show_running(self) -> None:
        if self.spinner is None:
            return
        if self.running:
            self.spinner.update(f"{', '.join(self.running)} …")
            self.spinner.start()
        else:
            self.spinner.stop()

    def output(self, line: str) -> None:
        if self.verbose:
            self.console.print(line, markup=False)

    def event(self, event) -> None:
        pre, done, diag = (getattr(event, "resource_pre_event", None), getattr(event, "res_outputs_event", None),
                           getattr(event, "diagnostic_event", None))
        for step, finished in ((pre, False), (done, True)):
            metadata = getattr(step, "metadata", None) if step else None
            if metadata is None or not str(metadata.type).startswith(COMPONENT_TYPE_PREFIX):
                continue
            name = str(metadata.urn).rsplit("::", 1)[-1]
            if finished:
                self.running = [n for n in self.running if n != name]
                self.console.print(f" [green]✓[/green] {name}")
            elif name not in self.started:
                self.started.add(name)
                self.running.append(name)
                if self.spinner is None:
                    self.console.print(f" • {name} …")
            self._show_running()
        if diag is not None and getattr(diag, "severity", "") == "error":
            message = str(getattr(diag, "message", "")).strip()
            if message:
                self.failed.append(message)
                self.running = []
                self._show_running()
                self.console.print(f" [red]✗[/red] {message.splitlines()[0][:200]}", markup=True)


COMPONENT_TYPE_PREFIX = "cd4ml:platform:"
CLUSTER_ANSWER_TIMEOUT = 120.0
"""How long `up` waits for the API server before refreshing against it."""
CLUSTER_GONE_TIMEOUT = 20.0
"""How long `down` gives the API server before it takes the cluster for gone."""
DELETE_UNREACHABLE_ENV = "PULUMI_K8S_DELETE_UNREACHABLE"
"""Read by pulumi-kubernetes' Configure when the provider's own `deleteUnreachable` is unset; set only by
`down` on a cluster that is gone: on every `up` it would drop the whole state when the API server
blinks (provider.go Read: an unreachable cluster and the option mean 'deleted')."""


def _engine_call(action: str, stack_name: str, project: Path, call):
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
    deliver_kit_images(config, context, console, project=project)
    program_env = platform_env(project, stack_name, config, context)
    if skip_checkpoints:
        program_env[SKIP_CHECKPOINTS_ENV] = "true"
        console.print(" • the state is saved once, at the end of this update (--skip-checkpoints): interrupted, "
                      "it would not know what it created; run `cd4ml down` then `up` again")
    # Refreshing against an API server that is not up yet (Docker restarting, a node still booting)
    # fails the whole update: give it time first, and say what it answered.
    target = _target_of(project, stack_name, program_env, context)
    answers, seen = cluster_answers(target, CLUSTER_ANSWER_TIMEOUT)
    if not answers:
        raise LifecycleError(f"the cluster ({target}) did not answer within {CLUSTER_ANSWER_TIMEOUT:.0f}s; last seen: "
                             f"{seen}. Is Docker (or the cluster) running? Then run `cd4ml up` again")
    check_policy_pack_venv()
    stack = open_stack(project, stack_name, create=True, program_env=program_env)
    ensure_plugins(stack, console)
    config_file = platform_config_file(project, stack_name)
    console.print(f" • pulumi up (stack '{stack_name}', state in {state_dir(project)})")
    progress = EngineProgress(console, verbose)
    # The kit's policy pack (policy/, rules in infra/policies.py) checks every resource before it is created.
    policy_config = state_dir(project) / f"policy-config-{stack_name}.json"
    policy_config.parent.mkdir(parents=True, exist_ok=True)
    policy_config.write_text(json.dumps(pack_config(
        config.profile.value, (ingress.TRAEFIK_RELEASE,) if hosts.published(config) else ())))
    # refresh: what was changed or deleted on the cluster by hand is seen, and put back.
    try:
        result = _engine_call("up", stack_name, project, lambda: stack.up(
            on_output=progress.output, on_event=progress.event, color="never", refresh=True,
            policy_packs=[str(POLICY_PACK_DIR)], policy_pack_configs=[str(policy_config)], config_file=config_file,
            show_secrets=False))
    finally:
        progress.close()
    console.print(f"[green]✓[/green] platform up: {result.summary.result}")
    check_idempotent(stack, console, config_file)
    outputs = {name: output.value for name, output in result.outputs.items()}
    services = outputs.get("services") or {}
    for name, service in services.items():
        console.print(f"  • {name:<14} {service.get('url')}")
    for line in front_door(outputs):
        console.print(line)
    return services


def front_door(outputs: dict) -> list[str]:
    """The published services' URLs and the DNS record they need (exposure 'ingress'): printed by `up`
    and `status`, since the record is the one step the kit leaves to the facilitator."""
    door = outputs.get("ingress")
    if not door or not outputs.get("platform"):
        return []
    document = PlatformDocument.from_json(outputs["platform"])
    published = [s for s in document.services if s.public_url]
    lines = [f"  • {s.name:<14} {s.public_url}" for s in published]
    address, domain = door.get("address"), door.get("domain")
    if not address:
        where = document.ingress
        look = f"kubectl -n {where.namespace} get svc {where.controller_service}" if where else "kubectl get svc -A"
        return lines + [f"  DNS: *.{domain} must point at the ingress controller, which has no address yet ({look})"]
    kind = "A" if _is_ip(address) else "CNAME"
    record = f"*.{domain} {kind} {address}"
    # What the published hosts resolve to now: after a `recreate` the load balancer, and so the
    # address, is a new one, and yesterday's record points at nothing.
    public_host = urlparse(published[0].public_url or "").hostname if published else None
    now, wanted = addresses(public_host) if public_host else set(), addresses(address)
    if now and now & wanted:
        return lines + [f"  DNS: ✓ *.{domain} points at the ingress controller ({address})"]
    if now:
        return lines + [f"  DNS: *.{domain} points at {', '.join(sorted(now))}, not the ingress controller: "
                        f"update the record to {record}; certificates are issued once it resolves"]
    return lines + [f"  DNS: create the record {record} (the kit does not manage DNS); "
                    "certificates are issued once it resolves"]


def _is_ip(address: str) -> bool:
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return False
    return True


def addresses(host: str) -> set[str]:
    """The IP addresses a name resolves to here; none if it does not resolve."""
    try:
        return {info[4][0] for info in socket.getaddrinfo(host, 443, type=socket.SOCK_STREAM)}
    except (socket.gaierror, UnicodeError):
        return set()


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


def down(project: Path, stack_name: str, console: Console, delete_cluster: bool = False, verbose: bool = False,
         run: Callable[..., subprocess.CompletedProcess] = subprocess.run, skip_checkpoints: bool = False) -> None:
    """Destroy the platform stack, then the kind cluster if asked. A cluster that is already gone (or
    does not answer) cannot have anything deleted from it: its resources are then dropped from the
    state, which pulumi-kubernetes does only on a refresh, for Helm releases too (its Delete refuses a
    release on an unreachable cluster: provider/pkg/provider/provider.go, pulumi-kubernetes#2675)."""
    if deployed(project, stack_name):
        try:
            target = kube_target(project, stack_name)
            answers, seen = cluster_answers(target, CLUSTER_GONE_TIMEOUT)
        except LifecycleError as why:
            if "has no kubeconfig" not in str(why):
                raise
            target, answers, seen = "its cluster stack's", False, "the cluster stack holds no cluster"
        program_env = {} if answers else {DELETE_UNREACHABLE_ENV: "true"}
        if skip_checkpoints:
            program_env[SKIP_CHECKPOINTS_ENV] = "true"
        stack = open_stack(project, stack_name, program_env=program_env)
        config_file = platform_config_file(project, stack_name)
        progress = EngineProgress(console, verbose)
        try:
            if not answers:
                console.print(f" [yellow]![/yellow] the cluster ({target}) does not answer ({seen}): the platform's "
                              "resources are dropped from the state, not deleted")
                _engine_call("refresh", stack_name, project, lambda: stack.refresh(
                    on_output=progress.output, on_event=progress.event, color="never", config_file=config_file,
                    show_secrets=False))
            _engine_call("destroy", stack_name, project, lambda: stack.destroy(
                on_output=progress.output, on_event=progress.event, color="never", config_file=config_file,
                show_secrets=False))
        finally:
            progress.close()
        console.print(f"[green]✓[/green] platform '{stack_name}' destroyed")
    else:
        console.print(f" • stack '{stack_name}' is not deployed: nothing to destroy")
    if not delete_cluster:
        return
    if cluster_deployed(project, stack_name):
        cluster = open_stack(project, stack_name, work_dir=project / "cluster")
        _engine_call("destroy (cluster)", stack_name, project, lambda: cluster.destroy(
            color="never", on_output=lambda line: None))
    else:  # a cluster from before the kit kept it as a stack, or made by hand with the kit's name
        result = run([ensure_kind(project, console, run), "delete", "cluster", "--name", KIND_CLUSTER], text=True)
        if result.returncode != 0:
            raise LifecycleError(f"kind could not delete cluster '{KIND_CLUSTER}' (exit {result.returncode})")
    console.print(f"[green]✓[/green] kind cluster '{KIND_CLUSTER}' deleted")
