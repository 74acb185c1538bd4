"""Prints what the lifecycle costs on the real engine against the envtest control plane: wall time of
`cd4ml up`, of the no-change preview and of `down`, and the engine's peak memory (the Pulumi CLI, its
language host, the providers and the policy pack, summed), for the laptop stack and for workshops of 30
and 100 participants — each beside the floor on the same kind of control plane: a plain server-side
apply of the same objects (`cd4ml plan`'s objects and the pinned charts rendered with the kit's values),
so the figures read as the engine's overhead over the floor.

A benchmark, not a test: it reports figures and asserts nothing. Needs `make envtest`'s binaries, the
kit's `.venv` and the charts' sources (CD4ML_UPSTREAM_CHARTS=DIR).
Run: make bench-envtest   (or .venv-test/bin/python tests/benchmarks/envtest_lifecycle.py [local 30 30s 100s]);
a trailing "s" runs that workshop's up and down with --skip-checkpoints (without it the engine rewrites
the whole state file at each step: 157 of 30 participants' 181 s; 100 participants, some 2,600 steps, were
not measured that way).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE.parent / "envtest"), str(HERE.parent / "standins")]

import yaml  # noqa: E402
from controlplane import BIN, ControlPlane  # noqa: E402
from mlflow_as_charted import _descendants  # noqa: E402

REPO = HERE.parents[1]


class PeakMemory:
    """The largest RSS sum over this process's descendants (the engine and its plugins), sampled; and
    the CPU seconds each program among them used (where the time goes)."""

    def __init__(self) -> None:
        self.peak_mib, self._stop = 0.0, threading.Event()
        self.cpu: dict[int, tuple[str, float]] = {}
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        ticks = os.sysconf("SC_CLK_TCK")
        while not self._stop.wait(0.5):
            total = 0
            for pid in _descendants(os.getpid()):
                try:
                    total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
                    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
                    program = Path(cmdline[0].decode()).name
                    if program.startswith("python") and len(cmdline) > 1:
                        program += " " + " ".join(c.decode() for c in cmdline[1:4])[-60:]
                    self.cpu[pid] = (program, (int(stat[11]) + int(stat[12])) / ticks)
                except (OSError, IndexError, ValueError):
                    continue
            self.peak_mib = max(self.peak_mib, total / 2**20)

    def by_program(self) -> list[tuple[str, float]]:
        summed: dict[str, float] = {}
        for program, seconds in self.cpu.values():
            summed[program] = summed.get(program, 0.0) + seconds
        return sorted(summed.items(), key=lambda item: -item[1])[:6]

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def project_for(scratch: Path, settings: dict, charts: Path) -> Path:
    project = scratch / "kit"
    project.mkdir()
    for name in ("Pulumi.yaml", "__main__.py"):
        shutil.copy(REPO / name, project)
    for name in ("infra", "charts", "policy"):
        (project / name).symlink_to(REPO / name)
    shutil.copytree(REPO / "stacks", project / "stacks")
    (project / ".venv").symlink_to(REPO / ".venv")
    (project / ".tools" / "pulumi").mkdir(parents=True)
    (project / ".tools" / "pulumi" / "bin").symlink_to(BIN)
    config = {**settings, "cd4ml:kubeContext": "envtest", "cd4ml:chartsDir": str(charts),
              "cd4ml:imageRegistry": "registry.example.com/cd4ml"}
    (project / "stacks" / "Pulumi.bench.yaml").write_text(yaml.safe_dump({"config": config}))
    return project


def floor(plane: ControlPlane, project: Path) -> float:
    """Seconds for `kubectl apply --server-side` of what the stack creates: the plan's objects and the
    charts rendered with the kit's values (namespaces and CRDs first, as the engine orders them)."""
    from test_upstream_charts import render

    from infra.config import load_stack
    from infra.platform.build import build_platform
    from infra.render import kit_objects

    platform = build_platform(load_stack(project / "stacks", "bench"), "bench")
    objects = list(kit_objects(platform))
    for part in platform.parts:
        for release in part.releases:
            objects += render(Path(release.local_chart).parent, release)[1]
    first = [o for o in objects if o["kind"] in ("Namespace", "CustomResourceDefinition")]
    rest = [o for o in objects if o not in first]
    with tempfile.TemporaryDirectory() as out:
        started = time.monotonic()
        for batch in (first, rest):
            manifest = Path(out) / "objects.yaml"
            manifest.write_text(yaml.safe_dump_all(batch))
            subprocess.run(["kubectl", "--kubeconfig", str(plane.kubeconfig), "apply", "--server-side",
                            "--force-conflicts", "-f", str(manifest)], capture_output=True, text=True)
        return time.monotonic() - started


def measure(name: str, settings: dict, nodes: int, capacity: dict, charts: Path, skip_checkpoints: bool = False) -> None:
    from typer.testing import CliRunner

    from infra.cli import lifecycle, stacks, tools
    from infra.cli.main import app

    with tempfile.TemporaryDirectory(prefix="cd4ml-bench-") as scratch_dir:
        scratch = Path(scratch_dir)
        project = project_for(scratch, settings, charts)
        stages = tuple(sorted((HERE.parent / "envtest" / "stages").glob("*.yaml")))
        plane = ControlPlane(scratch / "plane", nodes=nodes, capacity=capacity, stages=stages).start()
        cwd = os.getcwd()
        os.chdir(project)
        os.environ["KUBECONFIG"] = str(plane.kubeconfig)
        stacks.PASSPHRASE_FILE = scratch / "passphrase"
        tools.POLICY_PACK_DIR = project / "policy"
        try:
            with PeakMemory() as memory:
                started = time.monotonic()
                skip = ["--skip-checkpoints"] if skip_checkpoints else []
                up = CliRunner().invoke(app, ["up", "--stack", "bench", "--no-smoke", *skip])
                up_seconds = time.monotonic() - started
            if up.exit_code != 0:
                print(f"{name}: up failed: {up.output[-800:]}")
                return
            stack = stacks.open_stack(project, "bench")
            started = time.monotonic()
            lifecycle.check_idempotent(stack, lifecycle.Console(quiet=True),
                                       stacks.platform_config_file(project, "bench"))
            preview_seconds = time.monotonic() - started
            started = time.monotonic()
            CliRunner().invoke(app, ["down", "--stack", "bench", *skip])
            down_seconds = time.monotonic() - started
        finally:
            os.chdir(cwd)
            plane.destroy()
        fresh = ControlPlane(scratch / "floor", nodes=nodes, capacity=capacity, stages=stages).start()
        try:
            floor_seconds = floor(fresh, project)
        finally:
            fresh.destroy()
    print(f"  {name:<30} up {up_seconds:6.1f}s  preview {preview_seconds:5.1f}s  down {down_seconds:6.1f}s  "
          f"engine peak {memory.peak_mib:6.0f} MiB  |  floor (server-side apply) {floor_seconds:5.1f}s")
    print("    CPU during up: " + ", ".join(f"{program} {seconds:.0f}s" for program, seconds in memory.by_program()))


def main() -> None:
    charts = Path(os.environ.get("CD4ML_UPSTREAM_CHARTS") or REPO / ".upstream-charts")
    missing = [b for b in ("etcd", "kube-apiserver", "pulumi", "pulumi-resource-kubernetes") if not (BIN / b).exists()]
    if missing or not (charts / "gocd" / "Chart.yaml").exists():
        print(f"envtest bench: skipped (binaries {missing or 'present'}; charts in {charts}: "
              f"{'present' if (charts / 'gocd').exists() else 'missing'}): `make envtest`, `cd4ml charts --pull DIR`")
        return
    from test_envtest_lifecycle import upstream_charts, workshop

    class Options:  # what upstream_charts reads from pytest's request
        config = type("C", (), {"getoption": staticmethod(lambda name: str(charts))})()

    from test_envtest_lifecycle import ENGINE, plugin_version

    which = sys.argv[1:] or ["local", "30", "30s", "100s"]  # "s": with --skip-checkpoints
    print("the lifecycle on the real engine against envtest (2 cores; kwok nodes)")
    with tempfile.TemporaryDirectory() as prepared:
        home = Path(prepared) / "pulumi-home"
        for binary in ENGINE[2:]:  # the kit's plugins from the local build; acquisition off
            subprocess.run([str(BIN / "pulumi"), "plugin", "install", "resource", binary.removeprefix("pulumi-resource-"),
                            f"v{plugin_version(binary)}", "--file", str(BIN / binary)],
                           env={**os.environ, "PULUMI_HOME": str(home)}, capture_output=True, check=True)
        os.environ.update(PULUMI_HOME=str(home), PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION="true",
                          PATH=f"{BIN}:{os.environ['PATH']}")
        ready = upstream_charts(Options, Path(prepared))
        for name in which:
            if name == "local":
                measure("laptop", {"cd4ml:profile": "laptop"}, 2,
                        {"cpu": "4", "memory": "8Gi", "pods": "110", "ephemeral-storage": "100Gi"}, ready)
            else:
                skip = name.endswith("s")
                stack = workshop(int(name.removesuffix("s")))
                label = f"workshop {name.removesuffix('s')}" + (" --skip-checkpoints" if skip else "")
                measure(label, stack["config"], stack["nodes"], stack["capacity"], ready, skip)


if __name__ == "__main__":
    main()
