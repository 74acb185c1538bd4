"""What a service builder is handed: the validated config, the namespaces and the wiring."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from infra.config import Profile, StackConfig
from infra.platform.layout import Namespaces
from infra.platform.model import Image, WiringEdge
from infra.platform.tenants import Tenant


@dataclass(frozen=True)
class BuildContext:
    config: StackConfig
    ns: Namespaces
    wiring: tuple[WiringEdge, ...]
    tenants: tuple[Tenant, ...]

    @property
    def profile(self) -> Profile:
        return self.config.profile

    @property
    def workshop(self) -> bool:
        return self.tenants[0].participant

    def image(self, image: Image) -> Image:
        """An upstream image as this stack pulls it (through `registryMirrors`, if set)."""
        return image.through(self.config.mirrors)

    def edge(self, consumer: str, provider: str) -> WiringEdge | None:
        """The edge between two nodes, or None when either end is switched off."""
        return next((e for e in self.wiring if e.consumer.id == consumer and e.provider.id == provider), None)

    def configure_edge(self, service: str) -> WiringEdge:
        """What a service's configure Job is given: the URL (and login) it configures the service through."""
        return next(e for e in self.wiring if e.kind == "configure" and e.provider.id == service)

    def expose_edge(self, node: str) -> WiringEdge:
        """How the ingress controller reaches what it publishes."""
        return next(e for e in self.wiring if e.kind == "expose" and e.provider.id == node)

    def edges_from(self, consumer: str) -> tuple[WiringEdge, ...]:
        return tuple(e for e in self.wiring if e.consumer.id == consumer)

    def edges_of_kind(self, kind: str) -> tuple[WiringEdge, ...]:
        return tuple(e for e in self.wiring if e.kind == kind)

    def volume_claim(self, size_gi: int) -> dict[str, Any]:
        """A PVC spec on the configured StorageClass (omitted = the cluster default)."""
        spec: dict[str, Any] = {"accessModes": ["ReadWriteOnce"],
                                "resources": {"requests": {"storage": f"{size_gi}Gi"}}}
        if self.config.storage_class:
            spec["storageClassName"] = self.config.storage_class
        return spec
