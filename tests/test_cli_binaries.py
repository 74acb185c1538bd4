"""The CLI against fake external programs (docker, kind) found the way the real ones are: on PATH or
in the kit's .tools/, run by subprocess, logging what they were asked. Nothing of the kit is patched
but the download of kind (no internet in tests); what the CLI decides and runs is its own.

The faults these reproduce were found on a fresh laptop's first `make up`: kind not on PATH (the kit's
own is in .tools/bin), and Docker Desktop's containerd image store refusing `kind load docker-image`.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from infra.cli import errors, lifecycle, tools
from infra.cli.main import app
from infra.cluster import KIND_VERSION
from infra.config import project_dir

FAKE = """#!{python}
import json, os, sys
name = os.path.basename(sys.argv[0])
with open({log!r}, "a") as log:
    log.write(json.dumps([name, *sys.argv[1:]]) + "\\n")
args = sys.argv[1:]
# Docker Desktop's default, the containerd image store: a pulled image is a multi-platform index whose
# other platforms are absent; saved whole, kind's `ctr images import --all-platforms` fails on them
# (kind#3795), and `kind load docker-image` always saves it whole.
if name == "kind" and args == ["version"]:
    print("kind {version} go1.25.4 linux/amd64")
elif name == "kind" and args[:2] == ["load", "docker-image"]:
    print("ERROR: failed to load image: ctr: content digest sha256:0b1c: not found", file=sys.stderr)
    sys.exit(1)
elif name == "kind" and args[:2] == ["load", "image-archive"]:
    if open(args[2], "rb").read() != b"one platform":
        print("ERROR: failed to load image: ctr: content digest sha256:0b1c: not found", file=sys.stderr)
        sys.exit(1)
elif name == "docker" and args[:2] == ["image", "save"]:
    output = args[args.index("--output") + 1]
    open(output, "wb").write(b"one platform" if "--platform" in args else b"an index of all platforms")
elif name == "docker" and args[:2] == ["image", "inspect"]:
    print("linux/amd64")
elif name == "docker" and args[:1] == ["info"]:
    print("28.2.2")
"""


def install_fake(where: Path, name: str, log: Path, version: str = KIND_VERSION) -> Path:
    where.mkdir(parents=True, exist_ok=True)
    program = where / name
    program.write_text(FAKE.format(python=sys.executable, log=str(log), version=version))
    program.chmod(program.stat().st_mode | stat.S_IXUSR)
    return program


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A checkout of the kit in a temporary directory (the CLI finds its project by Pulumi.yaml), with a
    PATH holding docker and nothing else of the kit's external programs."""
    root = tmp_path / "kit"
    root.mkdir()
    shutil.copy(project_dir() / "Pulumi.yaml", root)
    shutil.copytree(project_dir() / "stacks", root / "stacks")
    monkeypatch.chdir(root)
    log = tmp_path / "calls.jsonl"
    install_fake(tmp_path / "bin", "docker", log)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:/usr/bin:/bin")
    return root, log


def calls(log: Path) -> list[list[str]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_preload_uses_the_kits_own_kind_and_loads_through_an_archive(project):
    root, log = project
    install_fake(root / ".tools" / "bin", "kind", log)
    result = CliRunner().invoke(app, ["images", "--preload"])
    assert result.exit_code == 0, result.output
    asked = calls(log)
    kind_loads = [c for c in asked if c[:2] == ["kind", "load"]]
    assert kind_loads and all(c[2] == "image-archive" and c[-2:] == ["--name", "cd4ml"] for c in kind_loads)
    saved = [c for c in asked if c[:3] == ["docker", "image", "save"]]
    assert saved and all(c[c.index("--platform") + 1] == "linux/amd64" for c in saved)
    assert [c[3] for c in kind_loads] == [c[c.index("--output") + 1] for c in saved]
    assert "Traceback" not in result.output


def test_a_kind_of_another_version_on_path_is_not_used(project, monkeypatch, tmp_path):
    root, log = project
    install_fake(tmp_path / "bin", "kind", log, version="v0.20.0")
    fetched = []

    def download(url, target, what, console):  # the network, in tests: the pinned kind "arrives"
        fetched.append(url)
        install_fake(target.parent, target.name, log)

    monkeypatch.setattr(tools, "download", download)
    result = CliRunner().invoke(app, ["images", "--preload"])
    assert result.exit_code == 0, result.output
    [url] = fetched
    assert url.startswith(f"https://kind.sigs.k8s.io/dl/{KIND_VERSION}/kind-")
    assert (root / ".tools" / "bin" / "kind").is_file()


def test_without_any_kind_and_no_download_the_cli_says_so_in_one_line(project, monkeypatch):
    def download(url, target, what, console):
        raise errors.LifecycleError(f"could not download {what} from {url}: <urlopen error no network>")

    monkeypatch.setattr(tools, "download", download)
    result = CliRunner().invoke(app, ["images", "--preload"])
    assert result.exit_code == 1
    assert result.output.count("✗") == 1 and "could not download kind" in result.output
    assert "Traceback" not in result.output


def test_an_unforeseen_error_is_one_line_and_its_detail_is_behind_verbose(project, monkeypatch):
    """The kit's last line of defence: whatever escapes, the user reads what failed and what to do."""
    def missing_program(*args, **kwargs):
        raise FileNotFoundError(2, "No such file or directory", "kind")

    monkeypatch.setattr(lifecycle, "up", missing_program)
    plain = CliRunner().invoke(app, ["up", "--no-smoke"])
    assert plain.exit_code == 1 and "Traceback" not in plain.output
    [line] = [line for line in plain.output.splitlines() if line.strip()]
    assert line.startswith("✗ up stopped on an unexpected error: kind was not found") and "--verbose" in line
    verbose = CliRunner().invoke(app, ["up", "--no-smoke", "--verbose"])
    assert verbose.exit_code == 1 and "FileNotFoundError" in verbose.output
    assert os.environ.get("CD4ML_DEBUG") is None
