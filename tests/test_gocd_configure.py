"""GoCD by code: the requests the configure Job sends, against a stand-in for GoCD's API
(tests/standins/gocd_api.py — the documented shapes, not GoCD), and the Job's mounted code run
as the container would run it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from gocd_api import COLLECTIONS, GoCDApiStandIn
from http_standin import foreign_calls
from kube_objects import configure_objects

from infra.config import load_config
from infra.configure.api import ApiError, JsonApi
from infra.configure.gocd import Unauthorized, configure
from infra.platform.build import build_platform
from infra.platform.configure_job import mounted_tree
from infra.platform.gocd import ADMIN_USER
from infra.upstream.gocd import HEALTH

PASSWORD = "generated-gocd-admin-pw"
REPOS = ["https://git.example.com/team/churn-model.git", "git@git.example.com:team/fraud-model.git"]


def gocd_job(config: dict | None = None):
    service = build_platform(load_config({"cd4ml:modelRepos": REPOS, **(config or {})}), "local").services["gocd"]
    return configure_objects(service)


def desired_of(config: dict | None = None) -> dict:
    config_map, _ = gocd_job(config)
    return json.loads(config_map["data"]["desired.json"])


@pytest.fixture
def gocd():
    stand_in = GoCDApiStandIn(users={ADMIN_USER: PASSWORD}).start()
    yield stand_in
    stand_in.stop()


def api_for(gocd, password: str = PASSWORD) -> JsonApi:
    return JsonApi(f"{gocd.url}/go", ADMIN_USER, password, anonymous_first=True)


def test_first_run_creates_everything_and_turns_security_on(gocd):
    outcomes = configure(api_for(gocd), desired_of(), health_timeout=5)
    assert [(o.what, o.id, o.action) for o in outcomes] == [
        ("cluster profile", "cd4ml-kubernetes", "created"),
        ("elastic agent profile", "cd4ml-ml", "created"),
        ("config repository", "churn-model", "created"),
        ("config repository", "fraud-model", "created"),
        ("system administrators", "-", "updated"),
        ("authorization configuration", "cd4ml-password-file", "created"),
    ]
    assert gocd.security_on and gocd.system_admins["users"] == [ADMIN_USER]
    # The admins were named before security came on: no moment in which every user was an admin.
    assert gocd.admin_gaps == []
    # Every call reached its controller: each sent the media type its route is registered for.
    assert gocd.refused_routes == []
    # Everything before security went anonymously (GoCD refuses credentials while security is off);
    # the proof afterwards (reading the admins back) went as the kit's admin.
    users = [user for _, path, user in gocd.requests]
    assert set(users[:-2]) == {None} and users[-1] == ADMIN_USER
    repo = gocd.items["config_repos"]["fraud-model"]
    assert repo["plugin_id"] == "yaml.config.plugin"
    assert repo["material"] == {"type": "git", "attributes": {
        "url": "git@git.example.com:team/fraud-model.git", "branch": "main", "auto_update": True}}
    assert {(r["type"], r["directive"]) for r in repo["rules"]} == {("pipeline_group", "allow"),
                                                                      ("environment", "allow")}
    auth = gocd.items["auth_configs"]["cd4ml-password-file"]
    assert auth["plugin_id"] == "cd.go.authentication.passwordfile"
    assert auth["properties"] == [{"key": "PasswordFilePath", "value": "/etc/cd4ml/gocd-auth/password.properties"}]


def test_second_run_changes_nothing(gocd):
    configure(api_for(gocd), desired_of(), health_timeout=5)
    writes = len(gocd.writes)
    outcomes = configure(api_for(gocd), desired_of(), health_timeout=5)
    assert {o.action for o in outcomes} == {"unchanged"}
    assert len(gocd.writes) == writes  # not a single POST or PUT
    assert all(user == ADMIN_USER for method, _, user in gocd.requests[-len(outcomes):])


def test_a_repository_url_with_credentials_is_not_rewritten_on_every_run(gocd):
    """GoCD answers a material URL for display, its password masked (UrlArgument.forDisplay): the kit
    compares its own URL masked the same way, or each run would PUT the repository again."""
    private = {"cd4ml:modelRepos": ["https://ci-bot:s3cret@git.example.com/team/churn-model.git"]}
    configure(api_for(gocd), desired_of(private), health_timeout=5)
    shown = gocd._represent("config_repos", gocd.items["config_repos"]["churn-model"])
    assert shown["material"]["attributes"]["url"] == "https://ci-bot:******@git.example.com/team/churn-model.git"
    writes = len(gocd.writes)
    outcomes = configure(api_for(gocd), desired_of(private), health_timeout=5)
    assert {o.action for o in outcomes} == {"unchanged"} and len(gocd.writes) == writes


@pytest.mark.parametrize("url, shown", [
    ("https://git.example.com/a.git", "https://git.example.com/a.git"),
    ("https://bot:pw@git.example.com/a.git", "https://bot:******@git.example.com/a.git"),
    ("https://token@git.example.com/a.git", "https://******@git.example.com/a.git"),
    ("ssh://token@git.example.com/a.git", "ssh://token@git.example.com/a.git"),
])
def test_urls_are_masked_as_gocd_shows_them(url, shown):
    from infra.upstream.gocd import url_for_display

    assert url_for_display(url) == shown


def test_a_changed_stack_updates_only_what_changed(gocd):
    configure(api_for(gocd), desired_of(), health_timeout=5)
    before = len(gocd.writes)
    changed = desired_of({"cd4ml:modelRepos": REPOS + ["https://git.example.com/team/churn-model"],
                          "cd4ml:services": ["gocd", "fluentd", "elasticsearch"]})
    outcomes = {(o.id, o.action) for o in configure(api_for(gocd), changed, health_timeout=5)}
    # MLflow switched off: the agents' profile loses MLFLOW_TRACKING_URI; a second repo named churn-model
    # gets its own id rather than overwriting the first.
    assert ("cd4ml-ml", "updated") in outcomes and ("churn-model-2", "created") in outcomes
    assert ("churn-model", "unchanged") in outcomes and ("cd4ml-kubernetes", "unchanged") in outcomes
    assert [w for w in gocd.writes[before:]] == [
        ("PUT", "/go/api/elastic/profiles/cd4ml-ml"), ("POST", "/go/api/admin/config_repos/churn-model-2")]
    pod = {p["key"]: p["value"] for p in gocd.items["elastic_profiles"]["cd4ml-ml"]["properties"]}["PodConfiguration"]
    assert "MLFLOW_TRACKING_URI" not in pod and "FLUENTD_HOST" in pod


def test_update_sends_the_etag_and_retries_after_a_concurrent_edit(gocd):
    configure(api_for(gocd), desired_of(), health_timeout=5)
    gocd.items["cluster_profiles"]["cd4ml-kubernetes"]["properties"] = []  # edited by hand in the UI
    gocd.forced_412 = 1  # ...and edited again while the kit is updating it
    outcomes = configure(api_for(gocd), desired_of(), health_timeout=5)
    assert ("cd4ml-kubernetes", "updated") in {(o.id, o.action) for o in outcomes}
    assert len(gocd.items["cluster_profiles"]["cd4ml-kubernetes"]["properties"]) == 2


def test_an_item_that_keeps_changing_is_an_error_not_a_loop(gocd):
    configure(api_for(gocd), desired_of(), health_timeout=5)
    gocd.items["cluster_profiles"]["cd4ml-kubernetes"]["properties"] = []
    gocd.forced_412 = 99
    with pytest.raises(ApiError, match="cluster profile cd4ml-kubernetes kept changing .* HTTP 412"):
        configure(api_for(gocd), desired_of(), health_timeout=5)


def test_created_meanwhile_by_someone_else_is_updated_not_duplicated(gocd):
    gocd.create_race.add("churn-model")
    outcomes = configure(api_for(gocd), desired_of(), health_timeout=5)
    assert ("churn-model", "updated") in {(o.id, o.action) for o in outcomes}
    assert list(gocd.items["config_repos"]) == ["churn-model", "fraud-model"]
    assert gocd.items["config_repos"]["churn-model"]["material"]["attributes"]["branch"] == "main"


def test_a_refused_create_is_reported_not_taken_for_someone_elses(gocd):
    """GoCD's 422 for an elastic profile naming no cluster profile also says "exists" (ElasticProfileControllerV2
    l.216): it is a refusal to report at once, not a create race to retry and blame on another run."""
    from infra.configure.gocd import ensure
    from infra.upstream.gocd import ELASTIC_PROFILES

    profile = {"id": "orphan", "plugin_id": "cd.go.contrib.elasticagent.kubernetes", "cluster_profile_id": "none",
               "properties": []}
    with pytest.raises(ApiError, match="No Cluster Profile exists") as refused:
        ensure(api_for(gocd), ELASTIC_PROFILES, profile)
    assert "another configure run" not in str(refused.value)
    assert [p for m, p, _ in gocd.requests if m == "POST"] == ["/go/api/elastic/profiles"]  # asked once


def test_wrong_password_once_security_is_on_names_the_user_and_the_secret(gocd):
    configure(api_for(gocd), desired_of(), health_timeout=5)
    with pytest.raises(Unauthorized) as refused:
        configure(api_for(gocd, password="not-the-password"), desired_of(), health_timeout=5)
    message = str(refused.value)
    assert "cd4ml-admin" in message and "HTTP 401" in message and "gocd-admin Secret" in message
    assert "not-the-password" not in message


def test_a_server_that_never_gets_healthy_says_what_was_awaited_and_last_seen(gocd):
    gocd.healthy = False
    with pytest.raises(ApiError) as timed_out:
        configure(api_for(gocd), desired_of(), health_timeout=0.5)
    assert "GoCD server health" in str(timed_out.value) and "/go/api/v1/health" in str(timed_out.value)
    assert "last seen: HTTP 503" in str(timed_out.value)
    assert gocd.writes == []


def test_a_slow_start_is_waited_for(gocd):
    gocd.starting_answers = 3
    outcomes = configure(api_for(gocd), desired_of(), health_timeout=10)
    assert len(outcomes) == 6


def test_the_stand_in_refuses_what_gocd_refuses(gocd):
    """The stand-in itself must be strict, or the tests above prove nothing (GoCD 26.1.0's answers,
    read in its source: see tests/standins/gocd_api.py)."""
    with foreign_calls():  # trying the stand-in, not calls the kit makes
        path, accept = COLLECTIONS["cluster_profiles"]
        anonymous = JsonApi(f"{gocd.url}")
        # SparkPreFilter: a versioned API wants exactly one of GoCD's media types.
        for wrong in ("application/json", "*/*", f"{accept}; charset=utf-8"):
            refused = anonymous.call("GET", f"{path}/x", accept=wrong)
            assert (refused.status, refused.body) == (404, "The url you are trying to reach appears to be incorrect.\r\n")
        # Spark: a GoCD media type of another version finds no route.
        assert anonymous.call("GET", f"{path}/x", accept="application/vnd.go.cd.v2+json").status == 404
        # Health is exempt from the pre-filter, so Spark's own matching decides: application/json is not
        # vnd.go.cd.v1+json; a wildcard or the unversioned type is.
        health = "/go/api/v1/health"
        assert anonymous.call("GET", health, accept="application/json").body == "<html><body><h2>404 Not found</h2></body></html>"
        for fine in ("application/vnd.go.cd.v1+json", "application/vnd.go.cd+json", "*/*", "application/*"):
            assert anonymous.call("GET", health, accept=fine).status == 200, fine
        profile = {"id": "x", "plugin_id": "p", "properties": []}
        assert anonymous.call("POST", path, accept=accept, body=profile).status == 200
        assert anonymous.call("POST", path, accept=accept, body={"id": "x", "plugin_id": "p"}).status == 422
        assert anonymous.call("PUT", f"{path}/x", accept=accept, body={"id": "x"}).status == 412  # no If-Match
        with_credentials = JsonApi(f"{gocd.url}", ADMIN_USER, PASSWORD)
        assert with_credentials.call("GET", f"{path}/x", accept=accept).status == 401  # security is off
        assert with_credentials.call("GET", health, accept=HEALTH.accept).status == 401  # ...on health too


def test_security_on_with_no_admin_makes_every_user_an_admin_in_the_stand_in_as_in_gocd(gocd):
    """SecurityConfig.isAdmin (gocd 26.1.0 l.63-65): why the kit names its admins first."""
    gocd.users["p01"] = "participant-pw"
    path, accept = COLLECTIONS["auth_configs"]
    anonymous = JsonApi(gocd.url)
    assert anonymous.call("POST", path, accept=accept, body={"id": "a", "plugin_id": "p", "properties": []}).status == 200
    participant = JsonApi(gocd.url, "p01", "participant-pw")
    assert participant.call("GET", f"{path}/a", accept=accept).status == 200  # an admin, for lack of any
    assert gocd.admin_gaps
    anonymous_now = JsonApi(gocd.url)
    assert anonymous_now.call("GET", f"{path}/a", accept=accept).header("WWW-Authenticate") == 'Basic realm="GoCD"'


def test_the_jobs_mounted_code_runs_alone_in_a_bare_interpreter(gocd, tmp_path):
    """What the Job mounts is all it has: run it with nothing else importable (-I, only the mount on
    sys.path), as `python -m infra.configure.gocd desired.json`, against the stand-in."""
    config_map, job = gocd_job()
    for path, text in mounted_tree(config_map, job).items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
    container = job["spec"]["template"]["spec"]["containers"][0]
    module, desired_file = container["command"][2], container["command"][3]
    # The credentials arrive as the Job delivers them: files of the mounted Secret, named by *_FILE.
    secret = {"username": ADMIN_USER, "password": PASSWORD}
    env = {"GOCD_URL": f"{gocd.url}/go", "CD4ML_HEALTH_TIMEOUT": "10", "PATH": os.environ["PATH"]}
    for variable in (e for e in container["env"] if e["name"].endswith("_FILE")):
        local = tmp_path / variable["value"].lstrip("/")
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_text(secret[local.name] + "\n")
        env[variable["name"]] = str(local)
    assert {"GOCD_USERNAME_FILE", "GOCD_PASSWORD_FILE"} <= set(env)
    launcher = (f"import runpy, sys; sys.path[:0] = [{str(tmp_path)!r}]; "
                f"sys.argv = ['{module}', {str(tmp_path / Path(desired_file).name)!r}]; "
                f"runpy.run_module({module!r}, run_name='__main__')")
    first = subprocess.run([sys.executable, "-I", "-S", "-c", launcher], env=env, capture_output=True, text=True,
                           timeout=60)
    assert first.returncode == 0, first.stderr
    assert "gocd configure: config repository churn-model: created" in first.stdout
    second = subprocess.run([sys.executable, "-I", "-S", "-c", launcher], env=env, capture_output=True, text=True,
                            timeout=60)
    assert second.returncode == 0 and second.stdout.count(": unchanged") == 6
    wrong = subprocess.run([sys.executable, "-I", "-S", "-c", launcher], env=env | {"GOCD_PASSWORD": "wrong-pw"},
                           capture_output=True, text=True, timeout=60)
    assert wrong.returncode == 1 and "FAILED" in wrong.stderr and "HTTP 401" in wrong.stderr
    assert PASSWORD not in first.stdout + second.stdout + wrong.stdout + wrong.stderr
    assert "wrong-pw" not in wrong.stdout + wrong.stderr


def test_a_published_gocd_gets_its_site_urls_once(gocd):
    """With exposure 'ingress', GoCD's site URLs are its public URL (links in e-mails and job pages),
    set after security is on (the API is admin-only) and left alone when they already match."""
    desired = desired_of({"cd4ml:profile": "cluster", "cd4ml:exposure": "ingress", "cd4ml:domain": "w.example.com",
                          "cd4ml:tlsIssuer": "self-signed"})
    # The server's base URL: GoCD appends /go itself.
    assert desired["site_urls"] == {"site_url": "https://gocd.w.example.com",
                                    "secure_site_url": "https://gocd.w.example.com"}
    first = configure(api_for(gocd), desired, health_timeout=5)
    assert (first[-1].what, first[-1].action) == ("site URLs", "updated")
    assert gocd.site_urls == desired["site_urls"]
    assert configure(api_for(gocd), desired, health_timeout=5)[-1].action == "unchanged"
    assert "site_urls" not in desired_of()  # port-forward stacks leave GoCD's own default


# What the real spark-core 2.9.4 jar (Maven Central) chose for a route registered as GoCD registers
# health (v1, plus the unversioned alias), run in a small Java harness for issue #14's second reading.
SPARK_2_9_4_CHOICES = {
    "application/vnd.go.cd.v1+json": True, "application/vnd.go.cd+json": True, "application/vnd.go.cd.v2+json": False,
    "application/json": False, "*/*": True, "*": True, "application/*": True, None: True, "text/html": False,
    "application/json, */*;q=0.1": True, "application/vnd.go.cd.v1+json; charset=utf-8": True,
    "application/vnd.go.cd.v1+json;q=0": False, "text/*": False,
}


@pytest.mark.parametrize("accept", list(SPARK_2_9_4_CHOICES), ids=lambda a: repr(a))
def test_the_ported_route_choice_agrees_with_spark_2_9_4(accept):
    from spark_routing import gocd_media_types, pick

    assert (pick(gocd_media_types([1]), accept) is not None) is SPARK_2_9_4_CHOICES[accept]


def test_the_ready_repositories_are_read_with_the_git_servers_reader(gocd, tmp_path):
    """With the git server on, each tenant's ready repository is its config repository, cloned as the
    read-only user; the password comes from the mounted Secret, is sent once, and is never compared (GoCD
    shows only its encryption of it)."""
    desired = desired_of({"cd4ml:modelRepos": [], "cd4ml:services": ["gocd", "gitea"]})
    [repo] = desired["config_repos"]
    attributes = repo["material"]["attributes"]
    assert attributes["url"] == "http://gitea-http.cd4ml-git.svc.cluster.local:3000/cd4ml-admin/diabetes-model.git"
    assert attributes["username"] == "cd4ml-gocd" and "password" not in attributes
    (tmp_path / "password").write_text("reader-pw\n")
    attributes["password_file"] = str(tmp_path / "password")
    first = configure(api_for(gocd), desired, health_timeout=5)
    assert "config repository cd4ml-diabetes-model: created" in [str(o) for o in first]
    stored = gocd.items["config_repos"]["cd4ml-diabetes-model"]["material"]["attributes"]
    assert stored["password"] == "reader-pw" and "password_file" not in stored
    second = configure(api_for(gocd), desired, health_timeout=5)
    assert all(o.action == "unchanged" for o in second)


def test_the_stand_in_refuses_a_password_given_twice_as_gocd_does(gocd):
    """GoCD's PasswordDeserializer: `password` or `encrypted_password`, never both."""
    desired = desired_of({"cd4ml:modelRepos": [], "cd4ml:services": ["gocd", "gitea"]})
    [repo] = desired["config_repos"]
    attributes = repo["material"]["attributes"]
    attributes.pop("password_file")
    attributes.update(password="reader-pw", encrypted_password="AES:abc")
    from infra.upstream.gocd import CONFIG_REPOS

    answer = api_for(gocd).call("POST", CONFIG_REPOS.path, accept=CONFIG_REPOS.accept, body=repo)
    assert answer.status == 422 and "not both" in answer.summary()
