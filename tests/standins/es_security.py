"""Elasticsearch's authorization, as far as the kit's calls meet it: which cluster and index privileges
each call needs (tests/contracts/elasticsearch.yaml carries the evidence), resolved from the roles the
kit writes (infra/platform/elasticsearch.roles_document) plus the built-in roles its users hold. A call
whose user lacks a privilege is refused as Elasticsearch refuses it: a 403 security_exception, or, in a
bulk request, a 403 on each item with `"errors": true`. It is not Elasticsearch's security."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

BUILT_IN_ROLES = {
    "superuser": {"cluster": ["all"], "indices": [{"names": ["*"], "privileges": ["all"]}]},
    # ECK's association user for Kibana holds kibana_system: monitoring and Kibana's own indices.
    "kibana_system": {"cluster": ["monitor", "manage_index_templates", "manage_ilm"],
                      "indices": [{"names": [".kibana*"], "privileges": ["all"]}]},
}

CLUSTER_GRANTS = {
    "cluster:monitor/health": {"monitor", "manage", "all"},
    "indices:admin/index_template/get": {"manage_index_templates", "monitor", "manage", "all"},
    "indices:admin/index_template/put": {"manage_index_templates", "manage", "all"},
    "cluster:admin/ilm/get": {"manage_ilm", "read_ilm", "manage", "all"},
    "cluster:admin/ilm/put": {"manage_ilm", "manage", "all"},
}
"""The cluster actions of the kit's calls and the privileges that grant each."""

INDEX_GRANTS = {
    "read": {"read", "all"},
    "index": {"index", "create", "write", "all"},
    "create": {"create_doc", "create", "index", "write", "all"},
    "create_index": {"create_index", "auto_configure", "manage", "all"},
    "delete": {"delete", "write", "all"},
}
"""What a document operation needs on its index, and the index privileges that grant it."""

WRITE_FAMILY = {"index", "create", "create_doc", "write", "all"}
"""A bulk request from a user holding none of these on any index is refused whole (403), not per item."""


@dataclass
class Security:
    role_definitions: dict[str, dict]
    """Role name -> {cluster: [...], indices: [{names, privileges}]} (the roles.yml the kit writes)."""
    user_roles: dict[str, tuple[str, ...]]

    def _roles(self, user: str) -> list[dict]:
        return [(BUILT_IN_ROLES | self.role_definitions).get(name, {}) for name in self.user_roles.get(user, ())]

    def cluster_allows(self, user: str, action: str) -> bool:
        held = {p for role in self._roles(user) for p in role.get("cluster", [])}
        return bool(held & CLUSTER_GRANTS[action])

    def index_allows(self, user: str, index: str, operation: str) -> bool:
        return any(set(grant.get("privileges", [])) & INDEX_GRANTS[operation]
                   for role in self._roles(user) for grant in role.get("indices", [])
                   if any(fnmatch.fnmatchcase(index, name) for name in grant.get("names", [])))

    def may_write_somewhere(self, user: str) -> bool:
        return any(set(grant.get("privileges", [])) & WRITE_FAMILY
                   for role in self._roles(user) for grant in role.get("indices", []))

    def refusal(self, user: str, action: str) -> tuple[int, dict]:
        reason = (f"action [{action}] is unauthorized for user [{user}] with effective roles "
                  f"[{','.join(self.user_roles.get(user, ()))}]")
        return 403, {"error": {"type": "security_exception", "reason": reason}, "status": 403}
