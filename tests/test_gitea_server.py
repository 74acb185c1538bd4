"""The ready repositories on the real Gitea 1.27.3 (tests/gitea_server.py), configured by the kit's own
configure Job code as the Job mounts it: each participant gets their login and their private repository
with the example and their pipeline, GoCD's reader reads every one and writes none, a participant sees
and pushes only their own, and a second run changes nothing (a participant's work is never overwritten)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests
import yaml

from infra.config import SERVICE_NAMES, load_config
from infra.platform.build import build_platform
from infra.platform.configure_job import mounted_tree
from infra.platform.gitea import ADMIN_USER, READER_USER
from tests import gitea_server
from tests.stack_settings import workshop

pytestmark = pytest.mark.skipif(not gitea_server.available(), reason=gitea_server.WHY_ABSENT)

PASSWORDS = {ADMIN_USER: "admin-Generated-1", "ada": "ada-Generated-22", "grace": "grace-Generated-3",
             READER_USER: "reader-Generated-4"}


def stack():
    return load_config(workshop(participantNames=["ada", "grace"], services=list(SERVICE_NAMES)))


def platform():
    return build_platform(stack(), "workshop")


def run_job(service, url: str, tmp: Path, passwords: dict[str, str] = PASSWORDS) -> subprocess.CompletedProcess[str]:
    """`python -m infra.configure.gitea desired.json` with only what the Job mounts importable, its Secrets
    as files where the Job mounts them."""
    config_map, job = service.stages[-1].objects  # the configure Job's ConfigMap and Job
    tree = tmp / "mount"
    for path, text in mounted_tree(config_map, job).items():
        (tree / path).parent.mkdir(parents=True, exist_ok=True)
        (tree / path).write_text(text)
    container = job["spec"]["template"]["spec"]["containers"][0]
    desired = json.loads((tree / "desired.json").read_text())
    logins = tmp / "logins"
    logins.mkdir(exist_ok=True)
    for user in desired["users"]:
        (logins / user).write_text(passwords[user] + "\n")
    desired["password_dir"] = str(logins)
    (tree / "desired.json").write_text(json.dumps(desired))
    env = {"GITEA_URL": url, "CD4ML_HEALTH_TIMEOUT": "20", "PATH": os.environ["PATH"]}
    admin = tmp / "admin"
    admin.mkdir(exist_ok=True)
    (admin / "username").write_text(ADMIN_USER)
    (admin / "password").write_text(passwords[ADMIN_USER])
    for variable in (e for e in container["env"] if e["name"].endswith("_FILE")):
        env[variable["name"]] = str(admin / Path(variable["value"]).name)
    module = container["command"][2]
    launcher = (f"import runpy, sys; sys.path[:0] = [{str(tree)!r}]; sys.argv = ['{module}', "
                f"{str(tree / 'desired.json')!r}]; runpy.run_module({module!r}, run_name='__main__')")
    return subprocess.run([sys.executable, "-I", "-S", "-c", launcher], env=env, capture_output=True, text=True,
                          timeout=180)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    service = platform().services["gitea"]
    values = service.releases[0].values
    work = tmp_path_factory.mktemp("gitea")
    with gitea_server.gitea(values, work, (ADMIN_USER, PASSWORDS[ADMIN_USER])) as running:
        first = run_job(service, running.url, tmp_path_factory.mktemp("job"))
        yield running, service, first


def as_user(user: str) -> tuple[str, str]:
    return user, PASSWORDS[user]


def test_the_job_seeds_each_participants_private_repository_with_their_pipeline(server):
    running, _, first = server
    assert first.returncode == 0, first.stderr
    assert "gitea configure: repository ada/diabetes-model: created" in first.stdout
    assert "gitea configure: first commit ada/diabetes-model: created" in first.stdout
    repo = requests.get(f"{running.url}/api/v1/repos/ada/diabetes-model", auth=as_user("ada"), timeout=10).json()
    assert repo["private"] is True and repo["default_branch"] == "main" and not repo["empty"]
    raw = requests.get(f"{running.url}/api/v1/repos/ada/diabetes-model/raw/ci.gocd.yaml", auth=as_user("ada"),
                       timeout=10)
    pipeline = yaml.safe_load(raw.text)
    assert list(pipeline["pipelines"]) == ["ada-diabetes-model"]
    assert pipeline["environments"] == {"ada": {"pipelines": ["ada-diabetes-model"]}}
    assert pipeline["pipelines"]["ada-diabetes-model"]["materials"] == {"model_repo": {"type": "configrepo"}}
    served = requests.get(f"{running.url}/api/v1/repos/ada/diabetes-model/raw/model/train.py", auth=as_user("ada"),
                          timeout=10)
    assert served.status_code == 200 and "def main" in served.text


def test_a_participant_sees_only_their_own_repository(server):
    running, _, _ = server
    assert requests.get(f"{running.url}/api/v1/repos/grace/diabetes-model", auth=as_user("ada"),
                        timeout=10).status_code == 404
    assert requests.get(f"{running.url}/api/v1/repos/ada/diabetes-model", timeout=10).status_code == 403  # no login
    found = requests.get(f"{running.url}/api/v1/repos/search", auth=as_user("ada"), timeout=10).json()["data"]
    assert [r["full_name"] for r in found] == ["ada/diabetes-model"]


def test_gocds_reader_clones_every_ready_repository_and_pushes_to_none(server, tmp_path):
    running, _, _ = server
    host = running.url.removeprefix("http://")
    for owner in ("ada", "grace"):
        clone = subprocess.run(["git", "clone", "-q", f"http://{READER_USER}:{PASSWORDS[READER_USER]}@{host}/"
                                f"{owner}/diabetes-model.git", str(tmp_path / owner)], capture_output=True, text=True)
        assert clone.returncode == 0, clone.stderr
    (tmp_path / "grace" / "README.md").write_text("changed by the reader\n")
    subprocess.run(["git", "-C", str(tmp_path / "grace"), "-c", "user.name=r", "-c", "user.email=r@x",
                    "commit", "-qam", "no"], check=True, capture_output=True)
    push = subprocess.run(["git", "-C", str(tmp_path / "grace"), "push", "-q", "origin", "main"],
                          capture_output=True, text=True)
    assert push.returncode != 0 and "User permission denied for writing" in push.stderr


def test_a_participant_clones_changes_and_pushes_their_own_and_a_second_run_keeps_it(server, tmp_path):
    running, service, _ = server
    host = running.url.removeprefix("http://")
    url = f"http://ada:{PASSWORDS['ada']}@{host}/ada/diabetes-model.git"
    assert subprocess.run(["git", "clone", "-q", url, str(tmp_path / "ada")], capture_output=True).returncode == 0
    (tmp_path / "ada" / "model" / "NOTES.md").write_text("ada's change\n")
    git = ["git", "-C", str(tmp_path / "ada"), "-c", "user.name=ada", "-c", "user.email=ada@x"]
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "my change"], check=True)
    pushed = subprocess.run([*git, "push", "-q", "origin", "main"], capture_output=True, text=True)
    assert pushed.returncode == 0, pushed.stderr
    theirs = subprocess.run(["git", "push", "-q", f"http://ada:{PASSWORDS['ada']}@{host}/grace/diabetes-model.git",
                             "main"], cwd=tmp_path / "ada", capture_output=True, text=True)
    assert theirs.returncode != 0

    again = run_job(service, running.url, tmp_path / "again")
    assert again.returncode == 0, again.stderr
    changed = [line for line in again.stdout.splitlines() if ": " in line and not line.endswith(
        (": unchanged", ": done"))]
    assert changed == []
    kept = requests.get(f"{running.url}/api/v1/repos/ada/diabetes-model/raw/model/NOTES.md", auth=as_user("ada"),
                        timeout=10)
    assert kept.status_code == 200 and kept.text == "ada's change\n"


def test_a_changed_password_is_put_back_and_a_wrong_admin_is_named(server, tmp_path):
    running, service, _ = server
    requests.patch(f"{running.url}/api/v1/admin/users/grace", auth=as_user(ADMIN_USER), timeout=10,
                   json={"password": "someone-Else-9", "login_name": "grace", "source_id": 0,
                         "must_change_password": False}).raise_for_status()
    fixed = run_job(service, running.url, tmp_path / "fix")
    assert fixed.returncode == 0 and "gitea configure: user grace: updated" in fixed.stdout, fixed.stderr
    assert requests.get(f"{running.url}/api/v1/user", auth=as_user("grace"), timeout=10).status_code == 200
    wrong = run_job(service, running.url, tmp_path / "wrong", {**PASSWORDS, ADMIN_USER: "not-The-admin-1"})
    assert wrong.returncode == 1 and f"does not know the kit's admin {ADMIN_USER}" in wrong.stderr, wrong.stderr
    assert "HTTP 401" in wrong.stderr and "gitea.admin.existingSecret" in wrong.stderr
    assert "not-The-admin-1" not in wrong.stderr + wrong.stdout
    assert all(p not in fixed.stdout + fixed.stderr for p in PASSWORDS.values())


def test_gitea_as_the_kit_runs_it_fits_its_memory_request(server, capsys):
    running, service, _ = server
    [container] = service.workloads[0].containers
    rss = running.rss_mib()
    with capsys.disabled():
        print(f"\n  gitea {gitea_server.VERSION}: {rss:.0f} MiB RSS after seeding 2 participants "
              f"(request {container.resources.memory_request_mi} MiB, limit {container.resources.memory_limit_mi} MiB)")
    assert rss < container.resources.memory_limit_mi


def test_the_workshop_smoke_opens_the_participants_repository_and_not_the_others(server):
    """workshop.logins and workshop.participants-apart, given only the git server, against the real one."""
    from infra.document import PlatformDocument
    from infra.smoke.checks.workshop import participant_logins, participants_apart
    from infra.smoke.core import SmokeContext, Target

    running, _, _ = server
    logins = {("cd4ml-logging", f"elasticsearch-user-{name}"): {"username": name, "password": PASSWORDS[name]}
              for name in ("ada", "grace")}

    class Secrets:
        def read_secret(self, namespace: str, name: str) -> dict[str, str]:
            return logins[(namespace, name)]

    context = SmokeContext(platform=PlatformDocument.of(platform()), cluster=Secrets(), timeout=5.0,
                           targets={"gitea": Target("gitea", running.url, ADMIN_USER, PASSWORDS[ADMIN_USER])})
    assert participant_logins(context) == "ada logs in to Gitea (their repository)"
    assert participants_apart(context) == "ada cannot read grace's repository"


STAND_IN_CASES = [
    # (who, path): the smoke checks' calls, and the ref advertisement a git clone (GoCD's) asks for first
    (None, "/api/healthz"), (None, "/"), ("ada", "/"),
    (None, "/api/v1/user"), (ADMIN_USER, "/api/v1/user"), ("ada", "/api/v1/user"), ("wrong", "/api/v1/user"),
    (None, "/api/v1/repos/ada/diabetes-model"), (ADMIN_USER, "/api/v1/repos/ada/diabetes-model"),
    ("ada", "/api/v1/repos/ada/diabetes-model"), ("grace", "/api/v1/repos/ada/diabetes-model"),
    (READER_USER, "/api/v1/repos/ada/diabetes-model"), ("ada", "/api/v1/repos/ada/no-such-repo"),
    (None, "/ada/diabetes-model.git/info/refs?service=git-upload-pack"),
    (READER_USER, "/ada/diabetes-model.git/info/refs?service=git-upload-pack"),
    ("wrong", "/ada/diabetes-model.git/info/refs?service=git-upload-pack"),
    ("grace", "/ada/diabetes-model.git/info/refs?service=git-upload-pack"),
    (READER_USER, "/ada/no-such-repo.git/info/refs?service=git-upload-pack"),
    ("nobody", "/ada/diabetes-model.git/info/refs?service=git-upload-pack"),
    (READER_USER, "/ada/diabetes-model.git/info/refs?service=git-receive-pack"),
    (READER_USER, "/ada/diabetes-model.git/info/refs?service=unknown"),
    (READER_USER, "/ada/diabetes-model.git/info/refs"),
]


def _answer(url: str, who: str | None, path: str) -> tuple:
    auth = (None if who is None else (READER_USER, "not-the-password") if who == "wrong" else
            ("nobody", "no-password") if who == "nobody" else as_user(who))
    answer = requests.get(url + path, auth=auth, timeout=10, allow_redirects=False)
    headers = {name: answer.headers.get(name) for name in ("Location", "WWW-Authenticate")}
    try:
        body = answer.json()
        shown = {k: body[k] for k in ("status", "login", "is_admin", "empty", "private", "message", "url")
                 if k in body}
        shown["checks"] = sorted(body.get("checks", {}))
    except ValueError:
        kind = answer.headers.get("Content-Type", "").split(";")[0]
        first_line = answer.content.split(b"\n")[0]  # a refs advertisement's first pkt-line, or an error's text
        shown = {"type": kind, "start": "page" if kind == "text/html" or (kind == "text/plain" and answer.ok and
                                                                          answer.content) else first_line}
    return answer.status_code, shown | headers


def test_the_stand_in_answers_every_smoke_and_clone_call_as_the_real_gitea_does(server):
    """The smoke harness's Gitea (tests/standins/gitea.py, for machines without this build) against the real
    one, seeded alike: the same status and the same fields the kit reads, for each call."""
    from gitea import GiteaStandIn


    running, _, _ = server
    from infra.platform.gitea import root_url

    stand_in = GiteaStandIn.as_configured(platform().services["gitea"].settings, as_user(ADMIN_USER), PASSWORDS,
                                          root_url(stack())).start()
    try:
        differences = {(who, path): (_answer(running.url, who, path), _answer(stand_in.url, who, path))
                       for who, path in STAND_IN_CASES}
    finally:
        stand_in.stop()
    differing = {case: pair for case, pair in differences.items() if pair[0] != pair[1]}
    assert differing == {}, "\n".join(f"{case}: real {real} stand-in {ours}" for case, (real, ours) in differing.items())


def test_the_smoke_sees_gocd_clone_each_ready_repository_as_its_reader(server):
    """wire.gocd-gitea with GoCD's stand-in (configured by the kit's code, the reader's password from the
    mounted Secret) cloning from the real Gitea: before GoCD's first material check it fails saying so; then
    it passes; once the reader loses read access to one participant's repository (removed as a collaborator,
    through Gitea's API), GoCD keeps its parse result, and the check fails on the server's health message."""
    from gocd_api import GoCDApiStandIn
    from kube_objects import configure_desired, with_password_files

    from infra.configure.api import JsonApi
    from infra.configure.gocd import configure
    from infra.document import PlatformDocument
    from infra.smoke.checks.gitea import gocd_reads_ready_repos
    from infra.smoke.core import CheckFailed, SmokeContext, Target

    running, _, _ = server
    built = platform()
    gocd = GoCDApiStandIn(users={ADMIN_USER: "gocd-admin-pw"}).start()
    try:
        desired = with_password_files(configure_desired(built.services["gocd"]), PASSWORDS[READER_USER])
        configure(JsonApi(f"{gocd.url}/go", ADMIN_USER, "gocd-admin-pw", anonymous_first=True), desired,
                  health_timeout=5)
        gocd.git_hosts[built.services["gitea"].endpoint.url] = running.url
        context = SmokeContext(platform=PlatformDocument.of(built), timeout=1.0,
                               targets={"gocd": Target("gocd", f"{gocd.url}/go", ADMIN_USER, "gocd-admin-pw")})
        gocd.checking_materials = False
        with pytest.raises(CheckFailed, match="(?s)ada-diabetes-model: not checked yet.*has not checked it yet"):
            gocd_reads_ready_repos(context)
        gocd.checking_materials = True
        assert "GoCD cloned and parsed 2 ready repositories" in gocd_reads_ready_repos(context)
        removed = requests.delete(f"{running.url}/api/v1/repos/grace/diabetes-model/collaborators/{READER_USER}",
                                  auth=as_user(ADMIN_USER), timeout=10)
        assert removed.status_code == 204
        try:
            with pytest.raises(CheckFailed, match="(?s)no failed check of grace-diabetes-model.*remote: Repository not "
                                                  "found.*parsed once, but GoCD's latest check fails"):
                gocd_reads_ready_repos(context)
        finally:  # the module's other tests read with the reader
            requests.put(f"{running.url}/api/v1/repos/grace/diabetes-model/collaborators/{READER_USER}",
                         json={"permission": "read"}, auth=as_user(ADMIN_USER), timeout=10).raise_for_status()
    finally:
        gocd.stop()
