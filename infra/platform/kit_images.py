"""The kit's own images: built from `images/<name>/Dockerfile` by `cd4ml up`, and either loaded
into the local kind cluster or pushed to the stack's `imageRegistry`. Each tag ends in a digest of
the files the image is built from, so a cluster never runs a stale build under an old tag and
nobody has to remember to bump one."""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path

from infra.config import StackConfig
from infra.paths import REPO_ROOT
from infra.platform.model import Image

LOCAL_REGISTRY = "cd4ml.local"
"""A registry name nobody serves: images under it only exist where `kind load` put them."""
PYTHON_IMAGE = Image(repository="library/python", tag="3.13.7-slim")
"""Stock Python for the in-cluster configure Jobs (their code is standard-library only)."""


@dataclass(frozen=True)
class KitImage:
    name: str
    version: str
    """What the image is, for people (the GoCD version it extends, the kit's image revision)."""
    inputs: tuple[str, ...] = ()
    """Repository paths the Dockerfile copies (besides its own directory)."""

    @property
    def context(self) -> Path:
        """Docker build context: the repository root, so images can copy the kit's charts and schema."""
        return REPO_ROOT

    @property
    def dockerfile(self) -> Path:
        return REPO_ROOT / "images" / self.name / "Dockerfile"

    @property
    def tag(self) -> str:
        return f"{self.version}-{_digest(self)[:10]}"

    def content_digest(self) -> str:
        """sha256 over every file the image is built from, so a change without a new tag is caught."""
        digest = hashlib.sha256()
        roots = [self.dockerfile.parent] + [REPO_ROOT / path for path in self.inputs]
        for root in roots:
            for path in sorted([root] if root.is_file() else (p for p in root.rglob("*") if p.is_file())):
                digest.update(str(path.relative_to(REPO_ROOT)).encode() + b"\0" + path.read_bytes())
        return digest.hexdigest()

    def image(self, config: StackConfig) -> Image:
        if not config.image_registry:
            return Image(repository=self.name, tag=self.tag, registry=LOCAL_REGISTRY)
        registry, _, path = config.image_registry.partition("/")
        return Image(repository=f"{path}/{self.name}" if path else self.name, tag=self.tag, registry=registry)


@functools.cache
def _digest(image: KitImage) -> str:
    return image.content_digest()


GOCD_AGENT_ML = KitImage("gocd-agent-ml", "26.1.0-cd4ml.1", inputs=("charts/ml-app", "infra/events.py"))
"""GoCD's wolfi agent plus Python, the MLflow client, scikit-learn, kubectl, helm and charts/ml-app."""
MODEL_RUNTIME = KitImage("model-runtime", "0.1.0", inputs=("infra/events.py",))
"""What charts/ml-app runs: Python with MLflow, scikit-learn, fluent-logger and the event schema."""
KIT_IMAGES = (GOCD_AGENT_ML, MODEL_RUNTIME)
