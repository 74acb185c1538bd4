"""The programs `up` needs and installs itself when missing: the pinned kind, the Pulumi CLI and its
plugins, the cloud stacks' providers; and the policy pack's venv, checked before the engine starts."""

from __future__ import annotations

import functools
import json
import os
import platform as host
import shutil
import stat
import subprocess
import urllib.request
from collections.abc import Callable
from pathlib import Path

import yaml
from rich.console import Console

from infra.cli.errors import LifecycleError
from infra.cluster import KIND_VERSION
from infra.config import ClusterProvider, StackConfig
from infra.paths import REPO_ROOT

PULUMI_VERSION = "3.272.0"
"""The Pulumi CLI released with the pinned Python SDK (they are versioned together)."""


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


def tools_dir(project: Path) -> Path:
    return project / ".tools"


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
