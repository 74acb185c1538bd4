"""The kit's own images: built with Docker and delivered where the cluster pulls from (a registry,
or a local cluster's nodes); `images --preload` for a venue without internet."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

from rich.console import Console

from infra.cli import tools
from infra.cli.errors import LifecycleError
from infra.cluster import KIND_CLUSTER
from infra.config import StackConfig
from infra.paths import REPO_ROOT
from infra.platform.kit_images import GOCD_AGENT_ML, KIT_IMAGES, KitImage


def kit_images_for(config: StackConfig) -> list[KitImage]:
    """The kit's own images this stack runs: the ML agent (unless the stack names its own `agentImage`)
    and the model runtime come with GoCD."""
    if not config.enabled("gocd"):
        return []
    return [image for image in KIT_IMAGES if not (image is GOCD_AGENT_ML and config.agent_image)]


def deliver_kit_images(config: StackConfig, context: str, console: Console,
                       run: Callable[..., subprocess.CompletedProcess] = subprocess.run,
                       project: Path = REPO_ROOT) -> list[str]:
    """Build the kit's images (once per tag) and put them where the cluster pulls from: pushed to
    `imageRegistry`, or loaded into a local cluster's nodes. Returns the image references."""
    images = kit_images_for(config)
    if not images:
        return []
    refs = [image.image(config).ref for image in images]
    if not tools.docker_available(run):
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
        load_into_kind(ref, context.removeprefix("kind-"), tools.ensure_kind(project, console, run), console, run)
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
    if not tools.docker_available(run):
        raise LifecycleError("--preload pulls with Docker, and Docker is not running: start Docker first")
    kind = tools.ensure_kind(project or REPO_ROOT, console, run)
    for ref in refs:
        if run(["docker", "pull", ref], capture_output=True, text=True).returncode != 0:
            raise LifecycleError(f"`docker pull {ref}` failed: is the registry reachable from here?")
        load_into_kind(ref, KIND_CLUSTER, kind, console, run)
        console.print(f" [green]✓[/green] {ref}")
