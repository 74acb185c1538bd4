"""Settings in: from a stack file (`stacks/Pulumi.<stack>.yaml`), from the Pulumi engine at
`pulumi up`, and from `--set KEY=VALUE` overrides — all three through `load_config`, so a mistake gets
the same message whichever way it came in: the key, the value given and what is allowed."""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from infra.config.errors import PROJECT, ConfigError, ConfigProblem
from infra.config.model import CONFIG_KEYS, StackConfig, did_you_mean, key_of
from infra.config.rules import check_requirements


def _coerce_text(key: str, value: Any) -> Any:
    """Config from the Pulumi engine and from --set arrives as text; lists as JSON or a,b,c."""
    if not isinstance(value, str):
        return value
    field_name = next(n for n in StackConfig.model_fields if key_of(n) == key)
    annotation = str(StackConfig.model_fields[field_name].annotation)
    if annotation.startswith("tuple"):
        text = value.strip()
        if text.startswith("["):
            try:
                return json.loads(text)
            except json.JSONDecodeError:
                return value
        return [item.strip() for item in text.split(",") if item.strip()]
    return value


def load_config(raw: Mapping[str, Any], source: str = "stack config") -> StackConfig:
    """Validate raw `key -> value` settings (keys with or without the `cd4ml:` namespace)."""
    problems: list[ConfigProblem] = []
    settings: dict[str, Any] = {}
    for full_key, value in raw.items():
        namespace, _, key = full_key.rpartition(":")
        if namespace and namespace != PROJECT:
            continue  # provider settings such as kubernetes:context belong to their providers
        if key not in CONFIG_KEYS:
            problems.append(ConfigProblem(
                key=key, value=value,
                problem=f"unknown key{did_you_mean(key, CONFIG_KEYS)}; known keys: {', '.join(CONFIG_KEYS)}"))
            continue
        settings[key] = _coerce_text(key, value)
    try:
        config = StackConfig.model_validate(settings)
    except ValidationError as invalid:
        for error in invalid.errors():
            key = str(error["loc"][0]) if error["loc"] else "?"
            problems.append(ConfigProblem(key=key, value=settings.get(key), problem=_plain(error)))
        raise ConfigError(problems, source) from None
    if problems:
        raise ConfigError(problems, source)
    check_requirements(config, source)
    return config


def _plain(error: Mapping[str, Any]) -> str:
    """Pydantic's message without its 'Value error,' prefix, plus what type was expected."""
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "enum":
        return message.replace("Input should be", "must be one of")
    if error["type"] in ("int_parsing", "int_type", "int_from_float"):
        return "must be a whole number"
    if error["type"] in ("string_type",):
        return "must be text"
    if error["type"] in ("tuple_type",):
        return "must be a list"
    return message


def parse_overrides(pairs: list[str]) -> dict[str, str]:
    """`--set KEY=VALUE` pairs; a pair without '=' is itself a config problem."""
    overrides: dict[str, str] = {}
    problems = []
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            problems.append(ConfigProblem(key=key or "?", value=pair, problem="--set needs KEY=VALUE"))
            continue
        overrides[key.strip()] = value
    if problems:
        raise ConfigError(problems, "--set")
    return overrides


def stack_file(stacks_dir: Path, stack: str) -> Path:
    return stacks_dir / f"Pulumi.{stack}.yaml"


def read_stack_file(stacks_dir: Path, stack: str) -> dict[str, Any]:
    """The `config:` mapping of a stack file; a missing file or stack names what exists."""
    path = stack_file(stacks_dir, stack)
    if not path.is_file():
        known = sorted(p.name.removeprefix("Pulumi.").removesuffix(".yaml") for p in stacks_dir.glob("Pulumi.*.yaml"))
        raise ConfigError([ConfigProblem(
            key="(stack)", value=stack,
            problem=f"no stack file {path}{did_you_mean(stack, known)}; stacks: {', '.join(known) or 'none'}")],
            "stack")
    try:
        document = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as broken:
        raise ConfigError([ConfigProblem(key="(file)", value=str(path), problem=f"is not valid YAML: {broken}")],
                          str(path)) from None
    config = document.get("config") or {}
    if not isinstance(config, dict):
        raise ConfigError([ConfigProblem(key="(file)", value=str(path), problem="'config' must be a mapping")],
                          str(path))
    return config


def load_stack(stacks_dir: Path, stack: str, overrides: Mapping[str, str] | None = None) -> StackConfig:
    """A stack file plus `--set` overrides, validated together (an override may fix the file)."""
    raw = dict(read_stack_file(stacks_dir, stack))
    for key, value in (overrides or {}).items():
        full = key if ":" in key else f"{PROJECT}:{key}"
        raw.pop(full.removeprefix(f"{PROJECT}:"), None)
        raw[full] = value
    return load_config(raw, source=f"stack '{stack}'")


def pulumi_project_config() -> dict[str, dict[str, Any]]:
    """The `config:` block of Pulumi.yaml, derived from the fields so the two cannot drift."""
    block: dict[str, dict[str, Any]] = {}
    for name, field in StackConfig.model_fields.items():
        default = field.default
        if isinstance(default, enum.Enum):
            default = default.value
        entry: dict[str, Any]
        if isinstance(default, tuple):
            entry = {"type": "array", "items": {"type": "string"}, "default": list(default)}
        elif isinstance(default, bool):
            entry = {"type": "boolean", "default": default}
        elif isinstance(default, int):
            entry = {"type": "integer", "default": default}
        else:
            entry = {"type": "string", "default": default}
        block[key_of(name)] = {"description": field.description, **entry}
    return block
