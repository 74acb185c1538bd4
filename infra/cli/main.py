"""`cd4ml`: the kit's command line. Thin: it validates input, calls the kit, and turns domain
errors into one clear message and a non-zero exit code (never a traceback)."""

from __future__ import annotations

import functools
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from infra.cli.errors import LifecycleError
from infra.config import ConfigError, ConfigProblem, TlsIssuer, load_stack, parse_overrides, project_dir
from infra.document import PlatformDocument, TenantEntry
from infra.handout import handout_envs, handout_links
from infra.plan import write_plan
from infra.platform.build import build_platform
from infra.validate import InvalidObject

if TYPE_CHECKING:
    from infra.config import StackConfig
    from infra.platform.model import Platform

app = typer.Typer(help="CD4ML platform kit: GoCD, EFK, Grafana and MLflow on Kubernetes, wired.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
console = Console(highlight=False, soft_wrap=True)
errors = Console(stderr=True, highlight=False, soft_wrap=True)


StackOption = Annotated[str, typer.Option("--stack", "-s", envvar="CD4ML_STACK",
                                          help="Stack name: stacks/Pulumi.<stack>.yaml.")]
SetOption = Annotated[list[str] | None, typer.Option(
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
    requests, limits = platform.requests, platform.limits
    console.print(f"[green]✓[/green] plan for stack '{stack}' ({platform.profile}) written to {result.out_dir} "
                  f"in {elapsed:.2f}s")
    console.print(f"  {result.objects} objects, {result.releases} Helm releases, {len(platform.images)} images; "
                  f"requests {requests['cpu_millicores']}m CPU, {requests['memory_mib']} MiB memory; "
                  f"limits {limits['cpu_millicores']}m CPU, {limits['memory_mib']} MiB memory")
    for service in platform.services.values():
        url = service.endpoint.url if service.endpoint else "-"
        public = f"  ->  {service.public_url}" if service.public_url else ""
        console.print(f"  • {service.name:<14} {url}{public}")
    from infra.platform.ingress import NAME as INGRESS
    from infra.platform.ingress import IngressSettings

    published = platform.optional_extra(INGRESS)
    if published and isinstance(published.settings, IngressSettings):
        certificates, issuer = published.settings.certificates, published.settings.issuer
        names = sum(len(hosts) for hosts in certificates.values())
        limits = (" (Let's Encrypt issues 50 a week per domain, 5 identical)"
                  if issuer == TlsIssuer.LETSENCRYPT.value else "")
        console.print(f"  TLS: {names} hosts on {len(certificates)} certificate(s) from {issuer}{limits}")
    if config.cluster_provider.value != "existing":
        from infra.platform.sizing import plan_nodes

        nodes = plan_nodes(platform, config.cluster_provider.value, config.machine_type)
        console.print(f"  {config.cluster_provider.value.upper()} cluster: {nodes.nodes} × {nodes.machine.name} "
                      f"(limited by {nodes.limited_by}), about ${nodes.usd_per_hour:.2f}/hour")


VerboseOption = Annotated[bool, typer.Option("--verbose", "-v", help="Show the Pulumi engine's own output.")]
SkipCheckpointsOption = Annotated[bool, typer.Option(
    "--skip-checkpoints", help="Save the state once, at the end, not after every step: 2.5 times faster for a "
                               "workshop of 30, more for 100; an interrupted update then does not know what it "
                               "created (run `cd4ml down`, then `up`).")]


def _fail(failure: Exception, code: int = 1) -> typer.Exit:
    errors.print(f"[red]✗[/red] {failure}")
    return typer.Exit(code=code)


@app.command()
def up(
    stack: StackOption = "local",
    smoke_after: Annotated[bool, typer.Option("--smoke/--no-smoke", help="Run the smoke tests afterwards.")] = True,
    skip_checkpoints: SkipCheckpointsOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Stand the platform up: install missing tools, create a kind cluster if there is no kube context,
    then `pulumi up` with a local file state backend, then the smoke tests."""
    from infra.cli import lifecycle

    directory = project_dir()
    try:
        config = load_stack(directory / "stacks", stack)
        build_platform(config, stack)  # a config mistake stops here, before any tool or cluster is touched
        lifecycle.up(directory, stack, config, console=console, verbose=verbose, skip_checkpoints=skip_checkpoints)
    except (ConfigError, LifecycleError) as failure:
        raise _fail(failure) from None
    if smoke_after:
        _smoke_or_exit(stack)
    console.print(f"Next: cd4ml status --stack {stack}   |   cd4ml handout --stack {stack}   |   "
                  f"kubectl -n {config.namespace_prefix}-monitoring port-forward svc/grafana 3000:80")


def _stack_platform(stack: str, overrides: list[str] | None) -> tuple[StackConfig, Platform]:
    """The stack's validated config and the platform derived from it; bad config ends the command."""
    try:
        config = load_stack(project_dir() / "stacks", stack, parse_overrides(overrides or []))
    except ConfigError as failure:
        raise _fail(failure) from None
    return config, build_platform(config, stack)


def _smoke_or_exit(stack: str) -> None:
    """The smoke tests right after `up`. Published URLs that wait only for the facilitator's DNS record
    (or the certificate it lets Let's Encrypt issue) are reported, and do not fail `up`."""
    from infra.smoke import report
    from infra.smoke.checks.ingress import waits_for_dns_or_certificate
    from infra.smoke.runner import failed

    console.print(" • smoke tests")
    results = _run_smoke(stack, [], [], timeout=180.0)
    report.print_results(console, results)
    waiting = [r for r in results if r.status == "fail" and waits_for_dns_or_certificate(r)]
    if failed(r for r in results if r not in waiting):
        raise typer.Exit(code=1)
    if waiting:
        console.print(f" [yellow]![/yellow] {len(waiting)} published URL(s) wait for the DNS record above (or for "
                      f"their certificate): once it resolves, run `cd4ml smoke --stack {stack}`")


@app.command()
def down(
    stack: StackOption = "local",
    cluster: Annotated[bool, typer.Option("--cluster", help="Also delete the local kind cluster.")] = False,
    skip_checkpoints: SkipCheckpointsOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Destroy the platform (works even when the cluster is already gone); --cluster deletes kind too."""
    from infra.cli import lifecycle

    try:
        lifecycle.down(project_dir(), stack, console, delete_cluster=cluster, verbose=verbose,
                       skip_checkpoints=skip_checkpoints)
    except LifecycleError as failure:
        raise _fail(failure) from None
    console.print(f"Next: cd4ml up --stack {stack}")


@app.command()
def recreate(
    stack: StackOption = "local",
    smoke_after: Annotated[bool, typer.Option("--smoke/--no-smoke", help="Run the smoke tests afterwards.")] = True,
    skip_checkpoints: SkipCheckpointsOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Down, then up, then the smoke tests: a fresh platform for the next group (the cluster stays)."""
    from infra.cli import lifecycle

    directory = project_dir()
    try:
        config = load_stack(directory / "stacks", stack)
        build_platform(config, stack)
        lifecycle.down(directory, stack, console, verbose=verbose, skip_checkpoints=skip_checkpoints)
        lifecycle.up(directory, stack, config, console=console, verbose=verbose, skip_checkpoints=skip_checkpoints)
    except (ConfigError, LifecycleError) as failure:
        raise _fail(failure) from None
    if smoke_after:
        _smoke_or_exit(stack)
    console.print(f"Next: cd4ml handout --stack {stack}")


@app.command()
def status(stack: StackOption = "local", timeout: Annotated[float, typer.Option(
        "--timeout", help="Deadline of each health check, in seconds.")] = 20.0) -> None:
    """The deployed services and their URLs, and whether each answers its health check right now (and,
    when the stack publishes them, through its public URL); a cloud cluster's nodes and hourly cost."""
    from infra.cli import dns, stacks
    from infra.smoke import report
    from infra.smoke.runner import failed

    try:
        outputs = stacks.stack_outputs(project_dir(), stack)
    except LifecycleError as failure:
        raise _fail(failure) from None
    cost = stacks.cluster_cost(project_dir(), stack)
    if cost:
        console.print(f"  {cost}")
    for name, service in (outputs.get("services") or {}).items():
        console.print(f"  • {name:<14} {service.get('url')}")
    for line in dns.front_door(outputs):
        console.print(line)
    tenants = PlatformDocument.from_json(outputs["platform"]).tenants if outputs.get("platform") else ()
    if tenants:
        console.print(f"  {len(tenants)} participants: {tenants[0].name} … {tenants[-1].name}")
    names = [n for n in _health_checks()]
    results = _run_smoke(stack, [], [], timeout, checks=names)
    report.print_results(console, results)
    if failed(results):
        raise typer.Exit(code=1)


def _health_checks() -> list[str]:
    from infra.smoke.checks import ALL_CHECKS

    return [c.name for c in ALL_CHECKS if c.name.endswith((".health", ".status")) or c.name.startswith("ingress.")]


def _workshop(stack: str, overrides: list[str] | None, what: str) -> tuple[StackConfig, Platform]:
    """The stack's config and platform, refused (naming what to set) when it has no participants."""
    config, platform = _stack_platform(stack, overrides)
    if not platform.tenants:
        raise _fail(ConfigError([ConfigProblem(
            key="participants", value=config.participants,
            problem=f"{what} are for workshop participants and this stack has none: set participants=N "
                    "(or participantNames) in its stack file, or --set participants=N")], f"stack '{stack}'"))
    return config, platform


def _own_repos(config: StackConfig, platform: Platform) -> dict[str, str | None]:
    """Each participant's own repository: their first `modelRepos` URL with {participant}, if any."""
    from infra.platform.gocd import participant_repo_urls

    return {t.name: next(iter(participant_repo_urls(config.model_repos, t.name)), None) for t in platform.tenants}


@app.command()
def handout(
    stack: StackOption = "local",
    overrides: SetOption = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory for the pages and the summary.")] = Path(
        "handouts"),
) -> None:
    """One page per participant (Markdown + printable HTML) and a facilitator summary (CSV, no passwords).
    Passwords come from the deployed stack; without one, the pages say where they will come from."""
    from infra.cli import stacks
    from infra.handout import ready_repo_urls, write_handouts

    directory = project_dir()
    config, platform = _workshop(stack, overrides, "handouts")
    passwords = None
    try:
        passwords = stacks.stack_outputs(directory, stack).get("participant_passwords")
    except LifecycleError as why:
        console.print(f" • {why}: pages written with a placeholder where the password goes")
    count = write_handouts([TenantEntry.of(t) for t in platform.tenants], handout_links(platform),
                           passwords, handout_envs(platform), out,
                           ready_repo_urls(platform) or _own_repos(config, platform))
    console.print(f"[green]✓[/green] {count} participant pages (Markdown and HTML) and "
                  f"facilitator-summary.csv written to {out}")


@app.command()
def repos(
    stack: StackOption = "local",
    overrides: SetOption = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory for one repository per participant.")] = Path(
        "repos"),
) -> None:
    """Each participant's ready model repository (the example with their pipeline name, group, GoCD
    environment and elastic profile), committed on main, for repositories of your own (`modelRepos`):
    push each where GoCD reads it. The kit's git server holds the same copies already."""
    from infra.model_repos import write_ready_repos
    from infra.platform.example_repo import ExampleChanged

    config, platform = _workshop(stack, overrides, "ready repositories")
    try:
        made = write_ready_repos(platform.tenants, _own_repos(config, platform), out)
    except ExampleChanged as why:
        raise _fail(why) from None
    for repo in made[:3]:
        push = f"git -C {repo.path} push {repo.url} main" if repo.url else f"{repo.path} (no modelRepos URL for it)"
        console.print(f"  • {repo.participant}: {push}")
    if len(made) > 3:
        console.print(f"  • … and {len(made) - 3} more, the same way")
    uncommitted = [r.participant for r in made if not r.committed]
    if uncommitted:
        console.print(f" • not committed (git missing or failing): {', '.join(uncommitted[:5])}")
    console.print(f"[green]✓[/green] {len(made)} ready repositories written to {out}")


@app.command()
def images(
    stack: StackOption = "local",
    overrides: SetOption = None,
    preload: Annotated[bool, typer.Option("--preload", help="Pull each image once and load it into the kind "
                                                            "cluster (before the workshop, on good Wi-Fi).")] = False,
) -> None:
    """Every image the platform pulls (the kit's own are built by `up`)."""
    from infra.cli import images

    config, platform = _stack_platform(stack, overrides)
    built = {image.image(config).ref for image in images.kit_images_for(config)}
    for ref in platform.images:
        console.print(f"{ref}{'   (built by cd4ml up)' if ref in built else ''}")
    if preload:
        try:
            images.preload_images([ref for ref in platform.images if ref not in built], console,
                                     project=project_dir())
        except LifecycleError as failure:
            raise _fail(failure) from None


@app.command()
def charts(
    stack: StackOption = "local",
    overrides: SetOption = None,
    pull: Annotated[Path | None, typer.Option(
        "--pull", help="Fetch every chart the stack installs, at its pinned version, into this folder (needs the "
                       "chart repositories: internet); then set chartsDir to it.")] = None,
) -> None:
    """The upstream charts the stack installs, at their pinned versions, and where they come from."""
    from infra.cli import charts as local_charts

    config, platform = _stack_platform(stack, overrides)
    releases = local_charts.pinned_charts(platform)
    if pull:
        for line in local_charts.pull(releases, pull):
            console.print(f" [green]✓[/green] {line}")
        console.print(f"Next: set `cd4ml:chartsDir: {pull}` in stacks/Pulumi.{stack}.yaml; `cd4ml up` then needs no "
                      "chart repository")
        return
    for release in releases:
        console.print(f"{release.chart} {release.version}  {release.local_chart or release.repo}")
    problems = local_charts.local_chart_problems(platform)
    for problem in problems:
        errors.print(f"[red]✗[/red] {problem}")
    if problems:
        raise typer.Exit(code=1)


@app.command()
def smoke(
    stack: StackOption = "local",
    endpoints: Annotated[list[str] | None, typer.Option(
        "--endpoint", help="Direct mode: reach SERVICE at URL (repeatable), e.g. mlflow=http://127.0.0.1:5000. "
                           "Logins come from CD4ML_<SERVICE>_USERNAME / CD4ML_<SERVICE>_PASSWORD. "
                           "Without it, services are reached through the stack's kube context.")] = None,
    only: Annotated[list[str] | None, typer.Option("--only", help="Check only this service (repeatable).")] = None,
    timeout: Annotated[float, typer.Option("--timeout", help="Deadline of each check, in seconds.")] = 60.0,
    api_only: Annotated[bool, typer.Option(
        "--api-only", help="Check only what the Kubernetes API answers (login Secrets, network policies, the "
                           "admission of the kit's pods, deploy rights): for a cluster whose pods run nothing, "
                           "such as a test control plane; every other check is reported skipped.")] = False,
    json_report: Annotated[Path | None, typer.Option("--json", help="Also write the results as JSON.")] = None,
    junit_report: Annotated[Path | None, typer.Option("--junit", help="Also write a JUnit XML report.")] = None,
) -> None:
    """Check that every service answers and every wire carries data; exit 1 if anything failed."""
    from infra.smoke import report
    from infra.smoke.runner import failed, write_json, write_junit

    results = _run_smoke(stack, endpoints or [], only or [], timeout, api_only=api_only)
    report.print_results(console, results)
    if json_report:
        write_json(results, json_report)
    if junit_report:
        write_junit(results, junit_report)
    if failed(results):
        raise typer.Exit(code=1)


def _run_smoke(stack: str, endpoints: list[str], only: list[str], timeout: float, checks: list[str] | None = None,
               api_only: bool = False):
    """Direct mode with --endpoint, else through the cluster the stack runs on; usage mistakes exit 2."""
    from infra.cli import stacks
    from infra.smoke.cluster import ClusterError
    from infra.smoke.runner import SmokeUsageError, smoke_run

    try:
        kube = None
        if not endpoints:
            config = load_stack(project_dir() / "stacks", stack)
            try:
                kube = stacks.kube_target(project_dir(), stack, config)
            except LifecycleError as why:
                raise ClusterError(str(why)) from None
        return smoke_run(stack, endpoints, only, timeout, checks=checks, kube=kube, api_only=api_only)
    except (ConfigError, SmokeUsageError, ClusterError) as failure:
        errors.print(f"[red]✗[/red] {failure}")
        raise typer.Exit(code=2) from None


@app.command("sync-project-config", hidden=True)
def sync_project_config() -> None:
    """Rewrite Pulumi.yaml's `config:` block from the StackConfig fields."""
    from infra.cli.project_file import write_project_config

    write_project_config(project_dir() / "Pulumi.yaml")
    console.print("[green]✓[/green] Pulumi.yaml config block updated")


def _guarded(command):
    """No command ends in a traceback: an error the kit did not foresee becomes one ✗ line saying what
    failed and what to do; --verbose (or CD4ML_DEBUG=1) adds the traceback."""

    @functools.wraps(command)
    def run(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except (typer.Exit, typer.Abort, KeyboardInterrupt):
            raise
        except Exception as unexpected:  # noqa: BLE001 - the last line of defence
            if kwargs.get("verbose") or os.environ.get("CD4ML_DEBUG"):
                errors.print_exception(show_locals=False)
            if isinstance(unexpected, FileNotFoundError) and unexpected.filename:
                what = f"{unexpected.filename} was not found: is it installed?"
            else:
                said = str(unexpected).strip()
                what = f"{type(unexpected).__name__}: {said.splitlines()[0][:300] if said else '(no message)'}"
            errors.print(f"[red]✗[/red] {command.__name__} stopped on an unexpected error: {what} "
                         "(run again with --verbose, or CD4ML_DEBUG=1, for the details; please report it)")
            raise typer.Exit(code=1) from None

    return run


for _info in app.registered_commands:
    _info.callback = _guarded(_info.callback)


def main() -> None:
    app()
