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
CURRENT_USER = Collection("current user", "/api/current_user", "application/vnd.go.cd.v1+json")
"""Any logged-in user (AuthorizeFilterChain l.115; CurrentUserController l.60-71 refuses anonymous): who the
login is, as GoCD's database has it after the password file accepted it."""
"""Anonymous always: GoCD refuses credentials while its security is off."""
SERVER_HEALTH_MESSAGES = Collection("server health messages", "/api/server_health_messages",
                                    "application/vnd.go.cd.v1+json")
"""Any logged-in user (ServerHealthMessagesController l.54-61, Routes.java l.618-619): the server's current
errors, each {message, detail, level, time} (ServerHealthMessagesRepresenter l.26-31). A material GoCD
cannot check now is one: "Modification check failed for material: URL: <url>, Branch: <branch>"
(MaterialDatabaseUpdater l.113-117, GitMaterial.getLongDescription l.215-217), cleared once a check
succeeds (l.111)."""
MATERIAL_CHECK_FAILED = "Modification check failed for material: URL: {url}, Branch: "

MASKED = "******"


def url_for_display(url: str) -> str:
    """A material URL as GoCD's API shows it: a password, or a lone token, replaced by ******
    (26.1.0 UrlArgument.forDisplay l.46-77, UrlUserInfo.maskedUserInfo l.74-88; GitMaterialRepresenter
    answers `getUriForDisplay`). Comparing the kit's URL with what GoCD answers needs the same mask, or a
    repository URL with credentials would be rewritten on every run."""
    from urllib.parse import urlsplit, urlunsplit

    if "@" not in url:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if not parts.username and not parts.password:
        return url
    userinfo, _, host = parts.netloc.rpartition("@")
    user, colon, _password = userinfo.partition(":")
    if not colon:  # a lone token, kept only for ssh URLs
        masked = userinfo if parts.scheme in ("ssh", "svn+ssh") else MASKED
    else:
        masked = f"{user}:{MASKED}"
    return urlunsplit(parts._replace(netloc=f"{masked}@{host}"))
