"""Serves the kit's rules (infra/policies.py) as the policy pack `cd4ml`; PolicyPack's constructor runs
the engine's analyzer server, so this file only composes."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pulumi_policy import EnforcementLevel, PolicyPack  # noqa: E402

from infra.policies import PACK_NAME, POLICIES  # noqa: E402

PolicyPack(name=PACK_NAME, enforcement_level=EnforcementLevel.MANDATORY, policies=POLICIES)
