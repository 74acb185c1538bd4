"""What a stack config that cannot be used raises: every problem, each naming its key."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

PROJECT = "cd4ml"
"""The Pulumi project name, which is also the namespace of every stack config key."""


class ConfigProblem(BaseModel):
    key: str
    value: Any
    problem: str

    def __str__(self) -> str:
        return f"{PROJECT}:{self.key} = {self.value!r}: {self.problem}"


class ConfigError(ValueError):
    """A stack config that cannot be used; lists every problem, each naming its key."""

    def __init__(self, problems: list[ConfigProblem], source: str = "stack config"):
        self.problems = problems
        self.source = source
        if not problems:
            raise ValueError("ConfigError needs at least one problem: an error without one says nothing")
        lines = "\n".join(f"  - {p}" for p in problems)
        noun = "problem" if len(problems) == 1 else "problems"
        super().__init__(f"{source} is invalid ({len(problems)} {noun}):\n{lines}")


