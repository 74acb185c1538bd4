"""Selecting Kubernetes objects by kind and name, never by position: a service that gains an object,
or lists its objects in another order, must not make a test read the wrong one."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def pick(objects: Iterable[dict[str, Any]], kind: str, name: str | None = None, *,
         name_prefix: str | None = None) -> dict[str, Any]:
    """The one object of `kind` named `name` (or whose name starts with `name_prefix`, for names that
    end in a content digest); fails, listing what there is, unless exactly one matches."""
    objects = list(objects)
    found = [o for o in objects if o.get("kind") == kind
             and (name is None or o["metadata"]["name"] == name)
             and (name_prefix is None or o["metadata"]["name"].startswith(name_prefix))]
    if len(found) != 1:
        there = sorted(f"{o.get('kind')}/{o.get('metadata', {}).get('name')}" for o in objects)
        raise LookupError(f"{len(found)} {kind} named {name or (name_prefix or '') + '*'}; there are: {there}")
    return found[0]


def configure_objects(service) -> tuple[dict[str, Any], dict[str, Any]]:
    """(ConfigMap, Job) of a service's configure Job: `<service>-configure-<digest>`."""
    prefix = f"{service.name}-configure-"
    return pick(service.objects, "ConfigMap", name_prefix=prefix), pick(service.objects, "Job", name_prefix=prefix)


def configure_desired(service) -> dict[str, Any]:
    """The desired state the service's configure Job is handed (its ConfigMap's desired.json)."""
    config_map, _ = configure_objects(service)
    return json.loads(config_map["data"]["desired.json"])


def with_password_files(desired: dict[str, Any], password: str) -> dict[str, Any]:
    """The GoCD desired state with each material's `password_file` (the mounted Secret gitea-reader) moved
    to a file of its own holding `password`: what the configure Job reads there in the pod."""
    directory = Path(tempfile.mkdtemp(prefix="mounted-secret-"))
    for repo in desired.get("config_repos", []):
        attributes = repo["material"]["attributes"]
        if "password_file" in attributes:
            moved = directory / Path(attributes["password_file"]).name
            moved.write_text(password + "\n")
            attributes["password_file"] = str(moved)
    return desired
