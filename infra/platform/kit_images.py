"""The kit's own images: built from `images/<name>/Dockerfile` by `cd4ml up`, and either loaded
into the local kind cluster or pushed to the stack's `imageRegistry`. Tags change with the files
they are built from, so a cluster never runs a stale build under an old tag."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from infra.config import StackConfig
from infra.platform.model import Image

REPO_ROOT = Path(__file__).resolve().parents[2]
LOCAL_REGISTRY = "cd4ml.local"
"""A registry name nobody serves: images under it only exist where `kind load` put them."""
PYTHON_IMAGE = Image(repository="library/python", tag="3.13.7-slim")
"""Stock Python for the in-cluster configure Jobs (their code is standard-library only)."""


@dataclass(frozen=True)
class KitImage:
    name: str
    version: str
    """Bumped by hand when the Dockerfile or its inputs change; a test pins it to their content."""

    @property
    def context(self) -> Path:
        """Docker build context: the repository root, so images can copy the kit's charts and schema."""
        return REPO_ROOT

    @property
    def dockerfile(self) -> Path:
        return REPO_ROOT / "images" / self.name / "Dockerfile"

    def image(self, config: StackConfig) -> Image:
        if not config.image_registry:
            return Image(repository=self.name, tag=self.version, registry=LOCAL_REGISTRY)
        registry, _, path = config.image_registry.partition("/")
        return Image(repository=f"{path}/{self.name}" if path else self.name, tag=self.version, registry=registry)


GOCD_AGENT_ML = KitImage("gocd-agent-ml", "26.1.0-cd4ml.1")
"""GoCD's wolfi agent plus Python, the MLflow client, scikit-learn, kubectl, helm and charts/ml-app."""
MODEL_RUNTIME = KitImage("model-runtime", "0.1.0")
"""What charts/ml-app runs: Python with MLflow, scikit-learn, fluent-logger and the event schema."""
KIT_IMAGES = (GOCD_AGENT_ML, MODEL_RUNTIME)
