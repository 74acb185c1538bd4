"""`cd4ml repos`: each participant's ready model repository written out as a folder, committed on `main`,
for a workshop whose repositories live elsewhere (`modelRepos`): the facilitator pushes each where GoCD
reads it. The same copies the kit's git server is seeded with (infra/platform/example_repo.py)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from infra.platform.example_repo import EXAMPLE, PIPELINE_FILE, example_files, tenant_pipeline
from infra.platform.tenants import Tenant


@dataclass(frozen=True)
class WrittenRepo:
    participant: str
    path: Path
    url: str | None
    """Where its config repository reads it (the stack's modelRepos entry with {participant}), if any."""
    committed: bool


def write_ready_repos(tenants: Sequence[Tenant], urls: Mapping[str, str | None], out_dir: Path,
                      git: str | None = shutil.which("git")) -> list[WrittenRepo]:
    """One folder per participant under `out_dir`, each a git repository with one commit on `main`
    (when git is installed), ready to push."""
    files = example_files()
    made = []
    for tenant in tenants:
        target = out_dir / tenant.name
        if target.exists():
            shutil.rmtree(target)
        for path, text in {**files, PIPELINE_FILE: tenant_pipeline(files[PIPELINE_FILE], tenant)}.items():
            (target / path).parent.mkdir(parents=True, exist_ok=True)
            (target / path).write_text(text, encoding="utf-8")
            shutil.copymode(EXAMPLE / path, target / path)  # deploy.sh stays executable
        committed = bool(git) and _commit(git, target, tenant.name)
        made.append(WrittenRepo(tenant.name, target, urls.get(tenant.name), committed))
    return made


def _commit(git: str, folder: Path, participant: str) -> bool:
    identity = ["-c", "user.name=cd4ml", "-c", "user.email=cd4ml@localhost", "-c", "commit.gpgsign=false"]
    for args in (["init", "-q", "-b", "main"], ["add", "-A"],
                 [*identity, "commit", "-q", "-m", f"The CD4ML example model, ready for {participant}"]):
        if subprocess.run([git, *args], cwd=folder, capture_output=True, text=True).returncode != 0:
            return False
    return True
