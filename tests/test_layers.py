"""Layering: the platform model and the smoke library never import Pulumi, so plan and smoke run
anywhere (no engine, no plugins) and the model stays plain data."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize("module", ["infra.platform.build", "infra.plan", "infra.smoke.runner", "infra.cli.main"])
def test_module_does_not_load_pulumi(module):
    probe = (f"import sys, {module}; "
             "loaded = sorted(m for m in sys.modules if m == 'pulumi' or m.startswith(('pulumi.', 'pulumi_'))); "
             "print(','.join(loaded))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "", f"{module} loads {result.stdout.strip()}"
