"""`cd4ml`: the kit's command line. Thin: it validates input, calls the kit, and turns domain
errors into one clear message and a non-zero exit code (never a traceback)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from infra.config import ConfigError, load_stack, parse_overrides, project_dir
from infra.plan import write_plan
from infra.platform.build import build_platform
from infra.validate import InvalidObject

app = typer.Typer(help="CD4ML platform kit: GoCD, EFK, Grafana and MLflow on Kubernetes, wired.",
                  no_args_is_help=True, add_completion=False)
console = Console(highlight=False, soft_wrap=True)
errors = Console(stderr=True, highlight=False, soft_wrap=True)


StackOption = Annotated[str, typer.Option("--stack", "-s", envvar="CD4ML_STACK",
                                          help="Stack name: stacks/Pulumi.<stack>.yaml.")]
SetOption = Annotated[Optional[list[str]], typer.Option(
    "--set", help="Override a stack config key for this run: KEY=VALUE (repeatable).")]


@app.command()
def plan(
    stack: StackOption = "local",
    overrides: SetOption = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory to write the plan into.")] = Path("plan"),
) -> None:
    """Write the desired platform (objects, releases, platform.json) offline: no cluster, no Pulumi CLI."""
    started = time.perf_counter()
    try:
        config = load_stack(project_dir() / "stacks", stack, parse_overrides(overrides or []))
        platform = build_platform(config, stack)
        result = write_plan(platform, out)
    except (ConfigError, InvalidObject) as failure:
        errors.print(f"[red]✗[/red] {failure}")
        raise typer.Exit(code=1) from None
    elapsed = time.perf_counter() - started
    requests = platform.requests
    console.print(f"[green]✓[/green] plan for stack '{stack}' ({platform.profile}) written to {result.out_dir} "
                  f"in {elapsed:.2f}s")
    console.print(f"  {result.objects} objects, {result.releases} Helm releases, {len(platform.images)} images; "
                  f"requests {requests['cpu_millicores']}m CPU, {requests['memory_mib']} MiB memory")
    for service in platform.services.values():
        url = service.endpoint.url if service.endpoint else "-"
        console.print(f"  • {service.name:<14} {url}")


@app.command()
def up(
    stack: StackOption = "local",
    smoke_after: Annotated[bool, typer.Option("--smoke/--no-smoke", help="Run the smoke tests afterwards.")] = True,
) -> None:
    """Stand the platform up: install missing tools, create a kind cluster if there is no kube context,
    then `pulumi up` with a local file state backend."""
    from infra.cli import lifecycle

    directory = project_dir()
    try:
        config = load_stack(directory / "stacks", stack)
        build_platform(config, stack)  # a config mistake stops here, before any tool or cluster is touched
        lifecycle.up(directory, stack, config, console=console)
    except (ConfigError, lifecycle.LifecycleError) as failure:
        errors.print(f"[red]✗[/red] {failure}")
        raise typer.Exit(code=1) from None
    if smoke_after:
        from infra.smoke import report
        from infra.smoke.runner import failed

        console.print(" • smoke tests")
        results = _run_smoke(stack, [], [], timeout=180.0)
        report.print_results(console, results)
        if failed(results):
            raise typer.Exit(code=1)
    console.print(f"Next: cd4ml smoke --stack {stack}   |   kubectl -n {config.namespace_prefix}-monitoring "
                  "port-forward svc/grafana 3000:80")


@app.command()
def smoke(
    stack: StackOption = "local",
    endpoints: Annotated[Optional[list[str]], typer.Option(
        "--endpoint", help="Direct mode: reach SERVICE at URL (repeatable), e.g. mlflow=http://127.0.0.1:5000. "
                           "Logins come from CD4ML_<SERVICE>_USERNAME / CD4ML_<SERVICE>_PASSWORD. "
                           "Without it, services are reached through the stack's kube context.")] = None,
    only: Annotated[Optional[list[str]], typer.Option("--only", help="Check only this service (repeatable).")] = None,
    timeout: Annotated[float, typer.Option("--timeout", help="Deadline of each check, in seconds.")] = 60.0,
    json_report: Annotated[Optional[Path], typer.Option("--json", help="Also write the results as JSON.")] = None,
    junit_report: Annotated[Optional[Path], typer.Option("--junit", help="Also write a JUnit XML report.")] = None,
) -> None:
    """Check that every service answers and every wire carries data; exit 1 if anything failed."""
    from infra.smoke import report
    from infra.smoke.runner import failed, write_json, write_junit

    results = _run_smoke(stack, endpoints or [], only or [], timeout)
    report.print_results(console, results)
    if json_report:
        write_json(results, json_report)
    if junit_report:
        write_junit(results, junit_report)
    if failed(results):
        raise typer.Exit(code=1)


def _run_smoke(stack: str, endpoints: list[str], only: list[str], timeout: float):
    """Direct mode with --endpoint, else through the stack's kube context; usage mistakes exit 2."""
    from infra.smoke.cluster import ClusterError
    from infra.smoke.runner import SmokeUsageError, smoke_run

    try:
        return smoke_run(stack, endpoints, only, timeout)
    except (ConfigError, SmokeUsageError, ClusterError) as failure:
        errors.print(f"[red]✗[/red] {failure}")
        raise typer.Exit(code=2) from None


@app.command("sync-project-config", hidden=True)
def sync_project_config() -> None:
    """Rewrite Pulumi.yaml's `config:` block from the StackConfig fields."""
    from infra.cli.project_file import write_project_config

    write_project_config(project_dir() / "Pulumi.yaml")
    console.print("[green]✓[/green] Pulumi.yaml config block updated")


def main() -> None:
    app()
