"""Secrets never leak: every generated value stays a Pulumi secret from the password to the object
that holds it, and nothing the kit writes or prints for people carries one.

Where each output is covered:
- the Pulumi program (here): under mocks every generated password has a recognisable value; each
  registered input that contains one must be carried as a secret. The exports `services` and
  `platform` are the model's documents, which hold no generated value (the plan test below);
  `participant_passwords` is wrapped in Output.secret (infra/program.py);
- `cd4ml plan` (here, and tests/test_plan.py): generated keys are named, never filled;
- handouts' facilitator CSV and the CLI output: tests/test_cli_lifecycle.py (passwords on pages only;
  `up --verbose`, `status` and `handout` against a stack whose outputs hold the passwords:
  `test_no_command_prints_a_generated_secret`);
- smoke output and diagnoses, including wrong-credential faults: tests/test_smoke.py;
- configure Jobs' logs and exceptions (wrong password): tests/test_gocd_configure.py and the
  bare-interpreter runs of every configure Job;
- `up --verbose` prints the engine's own lines, in which Pulumi masks secret values as [secret]
  (what a real engine prints is for the cluster e2e run).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pulumi_harness import run_program, unsecret
from stack_settings import workshop

from infra.config import load_config
from infra.plan import write_plan
from infra.platform.build import build_platform

MOCK_VALUE_MARKERS = ("mock-password-for-", "mock-bcrypt-of-")
"""What tests/pulumi_harness.py's mocks give every RandomPassword (result and bcrypt hash)."""


def leaks(value: Any, path: str = "") -> list[str]:
    """Paths where a generated value sits outside a secret."""
    plain, secret = unsecret(value)
    if secret:
        return []
    if isinstance(plain, dict):
        return [p for k, v in plain.items() for p in leaks(v, f"{path}.{k}")]
    if isinstance(plain, list):
        return [p for i, v in enumerate(plain) for p in leaks(v, f"{path}[{i}]")]
    return [path] if isinstance(plain, str) and any(m in plain for m in MOCK_VALUE_MARKERS) else []


def contains_generated(value: Any) -> bool:
    return any(m in json.dumps(value, default=str) for m in MOCK_VALUE_MARKERS)


def test_every_generated_value_travels_as_a_secret():
    for config in ({}, workshop(participants=3)):
        monitor = run_program(config)
        carrying = [r for r in monitor.registrations if r.type != "random:index/randomPassword:RandomPassword"
                    and contains_generated(r.inputs)]
        # The admin Secrets, the password files, the participants' logins: all hold generated values...
        assert len(carrying) >= 6
        # ...and none outside a secret, anywhere in any input.
        for registration in carrying:
            assert leaks(registration.inputs) == [], registration.name


def test_the_plan_names_generated_keys_and_holds_no_value(tmp_path):
    platform = build_platform(load_config(workshop(participants=3)), "workshop")
    write_plan(platform, tmp_path)
    text = "\n".join(p.read_text() for p in Path(tmp_path).rglob("*") if p.is_file())
    assert not any(m in text for m in MOCK_VALUE_MARKERS)
    holding = [s for s in platform.secrets if s.passwords]
    assert len(holding) >= 6
    for secret in holding:
        manifest = secret.manifest()
        generated = set(manifest["metadata"]["annotations"]["cd4ml.dev/generated-keys"].split(","))
        assert generated and generated.isdisjoint(manifest["stringData"]), secret.name
