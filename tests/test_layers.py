"""Layering: the platform model and the smoke library never import Pulumi, so plan and smoke run
anywhere (no engine, no plugins) and the model stays plain data."""

from __future__ import annotations

import subprocess
import sys

import pytest
from kube_objects import pick
from stack_settings import workshop


@pytest.mark.parametrize("module", ["infra.platform.build", "infra.document", "infra.plan", "infra.handout",
                                    "infra.smoke.runner", "infra.cli.main"])
def test_module_does_not_load_pulumi(module):
    probe = (f"import sys, {module}; "
             "loaded = sorted(m for m in sys.modules if m == 'pulumi' or m.startswith(('pulumi.', 'pulumi_'))); "
             "print(','.join(loaded))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "", f"{module} loads {result.stdout.strip()}"


def test_event_schema_needs_only_the_standard_library(tmp_path):
    """The model-runtime image ships infra/events.py alone, as `cd4ml_events`."""
    from pathlib import Path

    source = Path(__file__).resolve().parents[1] / "infra" / "events.py"
    (tmp_path / "cd4ml_events.py").write_text(source.read_text())
    probe = ("import sys; sys.path[:0] = [sys.argv[1]]; import cd4ml_events; "
             "print(cd4ml_events.tag('team-a'))")
    result = subprocess.run([sys.executable, "-I", "-S", "-c", probe, str(tmp_path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "team-a.prediction"


def _configure_jobs():
    from infra.config import load_config
    from infra.platform.build import build_platform

    platform = build_platform(load_config(workshop(participants=1)), "local")  # workshop mode: every Job
    return [(pick(part.objects, "ConfigMap", job["metadata"]["name"]), job)
            for part in platform.parts for job in part.objects
            if job["kind"] == "Job" and "-configure-" in job["metadata"]["name"]]


@pytest.mark.parametrize("config_map, job", _configure_jobs(), ids=lambda o: o["metadata"]["name"].rsplit("-", 1)[0])
def test_every_configure_jobs_mounted_code_imports_alone(config_map, job, tmp_path):
    """A Job has only what its ConfigMap mounts over a stock Python: no site-packages, no kit."""
    from infra.platform.configure_job import mounted_tree

    for path, text in mounted_tree(config_map, job).items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
    module = job["spec"]["template"]["spec"]["containers"][0]["command"][2]
    probe = f"import sys; sys.path[:0] = [sys.argv[1]]; import {module}; print({module}.main.__name__)"
    result = subprocess.run([sys.executable, "-I", "-S", "-c", probe, str(tmp_path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "main"
