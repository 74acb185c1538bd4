"""What every service stands on: the namespaces, and the generated passwords."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from infra.platform.model import GeneratedPassword, bcrypt_key
from infra.render import namespace_manifest


class Namespaces(pulumi.ComponentResource):
    """Every namespace the kit creates; services depend on this so none is created half-placed."""

    names: pulumi.Output[list[str]]

    def __init__(self, name: str, namespaces: Sequence[str], pod_security: Mapping[str, tuple[str, str]],
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("cd4ml:platform:Namespaces", name, None, opts)
        self.by_name = {
            ns: k8s.core.v1.Namespace(f"{name}-{ns}", metadata=namespace_manifest(ns, pod_security[ns])["metadata"],
                                      opts=pulumi.ResourceOptions(parent=self))
            for ns in namespaces
        }
        self.names = pulumi.Output.all(*[n.metadata["name"] for n in self.by_name.values()])
        self.register_outputs({"names": self.names})

    def of(self, names: Iterable[str]) -> list[pulumi.Resource]:
        """The Namespace resources a part places objects in: what it depends on. Depending on this
        component instead makes every child of the part depend on every namespace (the SDK expands a
        component into its children) — 200 namespaces in a workshop of 100, on each of thousands of
        resources, and the state file, rewritten at every step, grows to tens of MB."""
        return [self.by_name[name] for name in sorted(set(names)) if name in self.by_name]


class GeneratedPasswords(pulumi.ComponentResource):
    """One `random.RandomPassword` per password id in the model; values (and their bcrypt hashes)
    stay Pulumi secrets."""

    values: dict[str, pulumi.Output[str]]

    def __init__(self, name: str, passwords: Sequence[GeneratedPassword],
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("cd4ml:platform:GeneratedPasswords", name, None, opts)
        # No special characters: the values travel through env vars, URLs and Fluentd's Ruby strings.
        self.values = {}
        for pw in passwords:
            generated = random.RandomPassword(f"{name}-{pw.id}", length=pw.length, special=False,
                                              opts=pulumi.ResourceOptions(parent=self))
            self.values[pw.id] = generated.result
            # For password files: the server checks logins against the hash and never holds the password.
            self.values[bcrypt_key(pw.id)] = generated.bcrypt_hash
        self.register_outputs({"ids": sorted(pw.id for pw in passwords)})
