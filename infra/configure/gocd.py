"""GoCD by code: the elastic-agent cluster profile, the ML agent profile, one config repository per
model repository, and password-file security — ensured through GoCD's REST API, idempotently.

Every item is read first and only created (POST) when missing or updated (PUT with the ETag just
read, as `If-Match`) when it differs in a field the kit sets: a second run with the same desired
configuration sends no write at all. Credentials are sent only once GoCD asks for them (it rejects
them while its security is off).

Every call sends the media type its route is registered for: GoCD (Spark 2.9) picks a route by the
Accept header, and answers 404 to `application/json` (gocd 26.1.0, e.g.
`api/api-server-health-v1/.../ServerHealthController.java` l.50-53 registers health for
`application/vnd.go.cd.v1+json` only; Spark's `MimeParse.bestMatch` matches no other concrete type).

Security goes last, and the system admins go before it: with security on and no admin named, every
user is an admin (`SecurityConfig.isAdmin`), so a workshop's participants would be for as long as the
gap lasted, and for good if the kit's own login then failed. The first call that needs a login
(reading the admins back) proves the login works.

Run in-cluster as `python -m infra.configure.gocd DESIRED.json` with GOCD_URL, GOCD_USERNAME and
GOCD_PASSWORD in the environment (see infra/platform/gocd.py, which writes DESIRED.json).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from infra.configure.api import ApiError, JsonApi, Outcome, Response, covers, run_main, wait_for
from infra.upstream.gocd import (
    AUTH_CONFIGS,
    CLUSTER_PROFILES,
    CONFIG_REPOS,
    ELASTIC_PROFILES,
    HEALTH,
    PIPELINE_GROUPS,
    SITE_URLS,
    SYSTEM_ADMINS,
    Collection,
    url_for_display,
)

UPDATE_ATTEMPTS = 3


class Unauthorized(ApiError):
    pass


def _refused(api: JsonApi, answer: Response, doing: str) -> ApiError:
    if answer.status in (401, 403):
        return Unauthorized(
            f"GoCD refused {doing} for user {api.username or '(anonymous)'}: {answer.summary()}. "
            "Likely cause: the admin password in the gocd-admin Secret does not match the server's password "
            "file, or security was configured by someone else")
    return ApiError(f"GoCD answered {doing} with {answer.summary()}")


def as_shown(collection: Collection, desired: dict[str, Any]) -> dict[str, Any]:
    """`desired` as GoCD's API would show it back: a config repository's URL with its credentials masked,
    and no password (GoCD shows only its own encryption of it, GitMaterialRepresenter l.30)."""
    if collection is not CONFIG_REPOS:
        return desired
    material = desired["material"]
    attributes = {key: value for key, value in material["attributes"].items() if key != "password"}
    attributes["url"] = url_for_display(attributes["url"])
    return {**desired, "material": {**material, "attributes": attributes}}


def with_password(repo: dict[str, Any]) -> dict[str, Any]:
    """A config repository whose material names a `password_file` (a mounted Secret), with the password
    itself in its place, as GoCD's API takes it (GitMaterialRepresenter l.41-45)."""
    attributes = dict(repo["material"]["attributes"])
    path = attributes.pop("password_file", None)
    if path is None:
        return repo
    with open(path, encoding="utf-8") as secret:
        attributes["password"] = secret.read().strip()
    return {**repo, "material": {**repo["material"], "attributes": attributes}}


def ensure(api: JsonApi, collection: Collection, desired: dict[str, Any], singleton: bool = False,
           key: str = "id") -> Outcome:
    """Create or update one item so that it covers `desired`; never a duplicate. A singleton (the
    system admins) lives at the collection's path and is only ever updated; pipeline groups are
    keyed by `name`."""
    item = collection.path if singleton else f"{collection.path}/{desired[key]}"
    name = "-" if singleton else desired[key]
    for _attempt in range(UPDATE_ATTEMPTS):
        current = api.call("GET", item, accept=collection.accept)
        if current.status == 404 and not singleton:
            created = api.call("POST", collection.path, accept=collection.accept, body=desired)
            if created.status in (200, 201):
                return Outcome(collection.what, name, "created")
            if created.status == 422 and "already exists" in created.summary().lower():
                continue  # created meanwhile by someone else: read it and update
            # Any other 422 is the body refused (e.g. "No Cluster Profile exists with the specified
            # cluster_profile_id", ElasticProfileControllerV2.java l.211-220): say it, don't retry.
            raise _refused(api, created, f"POST {collection.path} ({name})")
        if current.status != 200:
            raise _refused(api, current, f"GET {item}")
        if covers(current.body, as_shown(collection, desired)):
            return Outcome(collection.what, name, "unchanged")
        etag = current.header("ETag")
        if not etag:
            raise ApiError(f"GoCD answered GET {item} without an ETag, so it cannot be updated safely")
        updated = api.call("PUT", item, accept=collection.accept, body=desired, headers={"If-Match": etag})
        if updated.status == 200:
            return Outcome(collection.what, name, "updated")
        if updated.status != 412:
            raise _refused(api, updated, f"PUT {item}")
        # 412: changed since we read it (someone else, or a second configure run) - read again.
    raise ApiError(f"{collection.what} {name} kept changing while the kit updated it "
                   f"({UPDATE_ATTEMPTS} attempts answered HTTP 412, or 422 already exists): "
                   "is another configure run active?")


def wait_until_healthy(api: JsonApi, timeout: float, pause: Callable[[float], None] | None = None) -> None:
    # Health never takes credentials: GoCD refuses them while its security is off.
    def healthy(answer: Response) -> bool:
        return answer.status == 200 and isinstance(answer.body, dict) and answer.body.get("health") == "OK"

    plain = JsonApi(api.base_url, timeout=api.timeout, default_accept=None)
    wait_for(plain, HEALTH.path, healthy, f"GoCD server health at {api.base_url}{HEALTH.path} "
             f"(Accept: {HEALTH.accept}) to answer 200 " '{"health": "OK"}', timeout, pause, accept=HEALTH.accept)


def ensure_agents_and_repos(api: JsonApi, desired: dict[str, Any]) -> list[Outcome]:
    """What GoCD needs before its security: the cluster and agent profiles, the pipeline groups, the config
    repositories (each material's password read from its mounted Secret)."""
    outcomes = [ensure(api, CLUSTER_PROFILES, desired["cluster_profile"])]
    outcomes += [ensure(api, ELASTIC_PROFILES, profile) for profile in desired["elastic_profiles"]]
    # Groups before config repositories: a repository's pipelines join the group and its permissions.
    outcomes += [ensure(api, PIPELINE_GROUPS, group, key="name") for group in desired.get("pipeline_groups", [])]
    outcomes += [ensure(api, CONFIG_REPOS, with_password(repo)) for repo in desired["config_repos"]]
    return outcomes


def configure(api: JsonApi, desired: dict[str, Any], health_timeout: float = 900.0,
              pause: Callable[[float], None] | None = None) -> list[Outcome]:
    """Everything in `desired`, in an order that never leaves GoCD half-configured and locked."""
    wait_until_healthy(api, health_timeout, pause)
    outcomes = ensure_agents_and_repos(api, desired)
    # The admins before the authorization configuration: never a moment with security on and no admin.
    outcomes.append(ensure(api, SYSTEM_ADMINS, desired["system_admins"], singleton=True))
    outcomes.append(ensure(api, AUTH_CONFIGS, desired["auth_config"]))
    # Security is on from here: an admin-only read must now ask for, and accept, the kit's login.
    proof = api.call("GET", SYSTEM_ADMINS.path, accept=SYSTEM_ADMINS.accept)
    if proof.status != 200:
        raise _refused(api, proof, f"GET {SYSTEM_ADMINS.path} (the kit's login, now that security is on)")
    if not api.authenticating:
        raise ApiError("GoCD still answers admin calls anonymously after the password-file authorization was "
                       "configured: security did not turn on")
    if desired.get("site_urls"):
        outcomes.append(ensure_site_urls(api, desired["site_urls"]))
    return outcomes


def ensure_site_urls(api: JsonApi, desired: dict[str, str]) -> Outcome:
    current = api.call("GET", SITE_URLS.path, accept=SITE_URLS.accept)
    if current.status != 200:
        raise _refused(api, current, f"GET {SITE_URLS.path}")
    if covers(current.body, desired):
        return Outcome(SITE_URLS.what, "-", "unchanged")
    updated = api.call("POST", SITE_URLS.path, accept=SITE_URLS.accept, body=desired)
    if updated.status != 200:
        raise _refused(api, updated, f"POST {SITE_URLS.path}")
    return Outcome(SITE_URLS.what, "-", "updated")


def main(argv: list[str] | None = None) -> int:
    return run_main("gocd", sys.argv[1:] if argv is None else argv, ("GOCD_URL", "GOCD_USERNAME", "GOCD_PASSWORD"),
                    lambda env: JsonApi(env["GOCD_URL"], env["GOCD_USERNAME"], env["GOCD_PASSWORD"],
                                        anonymous_first=True, default_accept=None),
                    configure)


if __name__ == "__main__":
    sys.exit(main())
