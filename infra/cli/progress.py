"""Pulumi's engine events shown as kind-style steps."""

from __future__ import annotations

from rich.console import Console


class EngineProgress:
    """Pulumi's engine events as kind-style steps: a line per kit component as it starts and as it is
    done (✓) or fails (✗) — on a terminal the running ones share one spinner line instead; in CI
    (no terminal) plain lines. The engine's own output only with --verbose."""

    def __init__(self, console: Console, verbose: bool = False) -> None:
        self.console, self.verbose = console, verbose
        self.started: set[str] = set()
        self.running: list[str] = []
        self.failed: list[str] = []
        self.spinner = console.status("") if console.is_terminal and not verbose else None

    def close(self) -> None:
        if self.spinner is not None:
            self.spinner.stop()

    def _show_running(self) -> None:
        if self.spinner is None:
            return
        if self.running:
            self.spinner.update(f"{', '.join(self.running)} …")
            self.spinner.start()
        else:
            self.spinner.stop()

    def output(self, line: str) -> None:
        if self.verbose:
            self.console.print(line, markup=False)

    def event(self, event) -> None:
        pre, done, diag = (getattr(event, "resource_pre_event", None), getattr(event, "res_outputs_event", None),
                           getattr(event, "diagnostic_event", None))
        for step, finished in ((pre, False), (done, True)):
            metadata = getattr(step, "metadata", None) if step else None
            if metadata is None or not str(metadata.type).startswith(COMPONENT_TYPE_PREFIX):
                continue
            name = str(metadata.urn).rsplit("::", 1)[-1]
            if finished:
                self.running = [n for n in self.running if n != name]
                self.console.print(f" [green]✓[/green] {name}")
            elif name not in self.started:
                self.started.add(name)
                self.running.append(name)
                if self.spinner is None:
                    self.console.print(f" • {name} …")
            self._show_running()
        if diag is not None and getattr(diag, "severity", "") == "error":
            message = str(getattr(diag, "message", "")).strip()
            if message:
                self.failed.append(message)
                self.running = []
                self._show_running()
                self.console.print(f" [red]✗[/red] {message.splitlines()[0][:200]}", markup=True)


COMPONENT_TYPE_PREFIX = "cd4ml:platform:"
