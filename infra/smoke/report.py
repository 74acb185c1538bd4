"""The smoke results as people read them: one row per check, and a diagnosis under each failure."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from infra.smoke.core import CheckResult

MARKS = {"pass": "[green]✓ pass[/green]", "fail": "[red]✗ fail[/red]", "skip": "[yellow]- skip[/yellow]"}


def print_results(console: Console, results: list[CheckResult]) -> None:
    table = Table(title="cd4ml smoke", show_lines=False)
    table.add_column("check")
    table.add_column("status")
    table.add_column("seconds", justify="right")
    table.add_column("detail", overflow="fold")
    for result in results:
        detail = result.detail if result.status != "fail" else "see diagnosis below"
        table.add_row(result.name, MARKS[result.status], f"{result.seconds:.2f}", detail)
    console.print(table)
    for result in results:
        if result.diagnosis:
            d = result.diagnosis
            console.print(f"[red]✗ {result.name}[/red]\n  component: {d.component}\n  tried:     {d.endpoint}\n"
                          f"  expected:  {d.expected}\n  saw:       {d.seen}\n  likely:    {d.likely_cause}")
    counts = {status: sum(r.status == status for r in results) for status in ("pass", "fail", "skip")}
    console.print(f"{counts['pass']} passed, {counts['fail']} failed, {counts['skip']} skipped")
