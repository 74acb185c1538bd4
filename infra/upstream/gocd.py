"""GoCD's config APIs at the pinned server (gocd/gocd 26.1.0): where each lives and the one media type
its route is registered for. GoCD (Spark 2.9) picks a route by the Accept header and answers 404 to any
other concrete type, `application/json` included (e.g. `api/api-server-health-v1/.../
ServerHealthController.java` l.50-53 registers health for `application/vnd.go.cd.v1+json` only).
Read by the configure Job (infra/configure/gocd.py) and the smoke checks (infra/smoke/checks/gocd.py)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Collection:
    """One GoCD config API: where it lives and the media-type version the pinned server speaks."""

    what: str
    path: str
    accept: str


CLUSTER_PROFILES = Collection("cluster profile", "/api/admin/elastic/cluster_profiles",
                              "application/vnd.go.cd.v1+json")
ELASTIC_PROFILES = Collection("elastic agent profile", "/api/elastic/profiles", "application/vnd.go.cd.v2+json")
PIPELINE_GROUPS = Collection("pipeline group", "/api/admin/pipeline_groups", "application/vnd.go.cd.v1+json")
CONFIG_REPOS = Collection("config repository", "/api/admin/config_repos", "application/vnd.go.cd.v4+json")
AUTH_CONFIGS = Collection("authorization configuration", "/api/admin/security/auth_configs",
                          "application/vnd.go.cd.v2+json")
SITE_URLS = Collection("site URLs", "/api/admin/config/server/site_urls", "application/vnd.go.cd.v1+json")
"""Where GoCD's links (e-mails, agents' job pages) point; set when the stack publishes GoCD (v1, no ETag)."""
SYSTEM_ADMINS = Collection("system administrators", "/api/admin/security/system_admins",
                           "application/vnd.go.cd.v2+json")
HEALTH = Collection("server health", "/api/v1/health", "application/vnd.go.cd.v1+json")
"""Anonymous always: GoCD refuses credentials while its security is off."""
