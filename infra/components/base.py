"""What every service component does: create its Secrets, then its stages in order.

A stage's built-in objects (the kit's own manifests and charts) go into one ConfigGroup, its ECK custom
resources become CustomResources the provider awaits, and its upstream
charts become Helm releases with fixed names, so Service DNS names are stable across re-creates.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pulumi
import pulumi_kubernetes as k8s

from infra.platform.model import HelmRelease, KitSecret, Service, bcrypt_key
from infra.render import service_objects
from infra.validate import CUSTOM_KINDS


@dataclass(frozen=True, kw_only=True)
class ServiceArgs:
    service: Service
    """The service as the platform model describes it; the component adds nothing of its own."""
    passwords: Mapping[str, pulumi.Output[str]]
    """Generated passwords by id, and their bcrypt hashes by `bcrypt_key(id)` (see `GeneratedPasswords`)."""
    release_values: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """By release name, values only another stack knows (Inputs), merged over the model's."""
    namespaces: Mapping[str, pulumi.Resource] = field(default_factory=dict)
    """The Namespace resources by name: each child waits for the namespace it is placed in, not for all
    the part touches (a tenant's Secret for its own namespaces, not the 200 of a workshop of 100)."""


def create_secret(name: str, secret: KitSecret, passwords: Mapping[str, pulumi.Output[str]],
                  opts: pulumi.ResourceOptions) -> k8s.core.v1.Secret:
    wanted = [pw.id for _, pw in secret.generated] + [bcrypt_key(pw.id) for _, _, pw in secret.password_files]
    manifest = secret.manifest(generated_values={key: passwords[key] for key in wanted},
                               password_line=lambda user, hashed: pulumi.Output.concat(user, ":", hashed, "\n"),
                               join_lines=lambda parts: pulumi.Output.concat(*parts))
    return k8s.core.v1.Secret(
        name,
        metadata=manifest["metadata"],
        type=manifest["type"],
        string_data=manifest["stringData"],
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(
            additional_secret_outputs=["data", "stringData"])),
    )


def merged(values: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """`over` merged into `values`, nested maps key by key."""
    result = dict(values)
    for key, value in over.items():
        result[key] = merged(result[key], value) if isinstance(value, Mapping) and isinstance(
            result.get(key), Mapping) else value
    return result


def create_release(name: str, release: HelmRelease, opts: pulumi.ResourceOptions,
                   extra_values: Mapping[str, Any] | None = None) -> k8s.helm.v3.Release:
    # From the chart repository at the pinned version, or from the local folder `chartsDir` holds it in
    # (`cd4ml up` checked that its Chart.yaml is that version).
    source = ({"chart": release.local_chart} if release.local_chart else
              {"chart": release.chart, "version": release.version,
               "repository_opts": k8s.helm.v3.RepositoryOptsArgs(repo=release.repo)})
    return k8s.helm.v3.Release(
        name,
        k8s.helm.v3.ReleaseArgs(
            name=release.name,
            namespace=release.namespace,
            **source,
            values=merged(release.values, extra_values or {}),
            timeout=release.timeout_seconds,
            cleanup_on_fail=True,
        ),
        opts=opts,
    )


def create_custom_resource(component: str, manifest: dict[str, Any],
                           opts: pulumi.ResourceOptions) -> k8s.apiextensions.CustomResource:
    """ECK's resources one by one: their CRDs come from a Helm release the provider cannot see into,
    and the `pulumi.com/waitFor` annotation in the manifest makes the provider await readiness."""
    return k8s.apiextensions.CustomResource(
        f"{component}-{manifest['kind'].lower()}-{manifest['metadata']['name']}",
        api_version=manifest["apiVersion"],
        kind=manifest["kind"],
        metadata=manifest["metadata"],
        spec=manifest["spec"],
        opts=opts,
    )


class ServiceComponent(pulumi.ComponentResource):
    """Base of the per-service components; subclasses set the type token and extra outputs."""

    TYPE: ClassVar[str]

    url: pulumi.Output[str | None]
    """The in-cluster URL consumers use (None for parts nobody connects to)."""
    namespace: pulumi.Output[str]
    credentials_secret: pulumi.Output[str | None]
    """`namespace/name` of the Secret with the login for people, or None."""

    def __init__(self, name: str, args: ServiceArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(self.TYPE, name, None, opts)
        service = args.service
        # Children wait for what the component waits for (the network policies, services it reads), and
        # for the namespaces they are placed in — each its own.
        namespace_resources = set(args.namespaces.values())
        waits_for = [d for d in (opts.depends_on if opts and isinstance(opts.depends_on, list) else [])
                     if d not in namespace_resources]

        def placed(*names: str) -> list[pulumi.Resource]:
            return [args.namespaces[n] for n in sorted(set(names)) if n in args.namespaces]

        secrets = [
            create_secret(f"{name}-secret-{secret.namespace}-{secret.name}", secret, args.passwords,
                          pulumi.ResourceOptions(parent=self, depends_on=[*waits_for, *placed(secret.namespace)]))
            for secret in service.secrets
        ]
        self.releases: dict[str, k8s.helm.v3.Release] = {}
        staged = list(service_objects(service))
        previous: list[pulumi.Resource] = waits_for + secrets
        for index, stage in enumerate(service.stages):
            objects = [manifest for at, manifest in staged if at == index]

            def stage_opts(*where: str, after: list[pulumi.Resource] = previous) -> pulumi.ResourceOptions:
                """After the previous stage, and in the namespaces it is placed in: one resource per object
                waits for its own (a workshop's Middlewares would otherwise each wait for all 200)."""
                return pulumi.ResourceOptions(parent=self, depends_on=[*after, *placed(*where)])

            created: list[pulumi.Resource] = []
            builtin = [m for m in objects if (m["apiVersion"], m["kind"]) not in CUSTOM_KINDS]
            if builtin:
                created.append(k8s.yaml.v2.ConfigGroup(
                    f"{name}-objects-{index}", objs=builtin,
                    opts=stage_opts(*(m.get("metadata", {}).get("namespace", "") for m in builtin))))
            created += [create_custom_resource(name, m, stage_opts(m.get("metadata", {}).get("namespace", "")))
                        for m in objects if (m["apiVersion"], m["kind"]) in CUSTOM_KINDS]
            for release in stage.releases:
                self.releases[release.name] = create_release(f"{name}-{release.name}", release,
                                                             stage_opts(release.namespace),
                                                             args.release_values.get(release.name))
                created.append(self.releases[release.name])
            previous = created or previous
        self.url = pulumi.Output.from_input(service.endpoint.url if service.endpoint else None)
        self.namespace = pulumi.Output.from_input(service.namespace)
        self.credentials_secret = pulumi.Output.from_input(
            service.credentials.qualified_name if service.credentials else None)
        self.add_resources(name, service)
        self.register_outputs(self.outputs())

    def add_resources(self, name: str, service: Service) -> None:
        """What a component adds beyond its stages (reads of what its charts create), before its outputs."""

    def outputs(self) -> dict[str, Any]:
        return {"url": self.url, "namespace": self.namespace, "credentials_secret": self.credentials_secret}
