"""Read docker/docker-compose.yml the way Compose does: YAML (anchors and merge keys) plus ${VAR} interpolation.

Pure helpers for the docker tests; nothing here talks to Docker.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCKER_DIR = REPO_ROOT / "docker"
COMPOSE_FILE = DOCKER_DIR / "docker-compose.yml"
ENV_EXAMPLE = DOCKER_DIR / ".env.example"

# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?message}, ${NAME?message}; $$ is a literal $.
_REFERENCE = re.compile(r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


class MissingVariable(LookupError):
    pass


def load_raw() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines (comments and blank lines ignored), as Compose reads an env file."""
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}: not a KEY=VALUE line: {line!r}"
        values[key.strip()] = value.strip()
    return values


def references(text: str) -> list[tuple[str, str | None]]:
    """(name, operator) of every ${...} reference in ``text`` (``$$`` escapes excluded)."""
    return [(m["name"], m["op"]) for m in _REFERENCE.finditer(text) if m["name"]]


def mask_references(text: str, token: str) -> str:
    """``text`` with every ${...} reference replaced by ``token`` (``$$`` kept)."""
    return _REFERENCE.sub(lambda m: m.group(0) if m.group(0) == "$$" else token, text)


def interpolate_text(text: str, env: Mapping[str, str]) -> str:
    def replace(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match["name"], match["op"], match["arg"]
        value = env.get(name)
        if op in (":-", ":?"):
            unset = not value
        else:
            unset = value is None
        if not unset:
            return value
        if op in (":-", "-"):
            return arg
        if op in (":?", "?"):
            raise MissingVariable(f"{name}: {arg}")
        return ""

    return _REFERENCE.sub(replace, text)


def interpolate(node, env: Mapping[str, str]):
    """Interpolate every string value (not keys) of a parsed compose document."""
    if isinstance(node, dict):
        return {key: interpolate(value, env) for key, value in node.items()}
    if isinstance(node, list):
        return [interpolate(value, env) for value in node]
    if isinstance(node, str):
        return interpolate_text(node, env)
    return node


def all_strings(node) -> list[str]:
    """Every string value of a parsed document (comments are not values)."""
    if isinstance(node, dict):
        return [text for value in node.values() for text in all_strings(value)]
    if isinstance(node, list):
        return [text for value in node for text in all_strings(value)]
    return [node] if isinstance(node, str) else []


def environment(service: Mapping) -> dict[str, str]:
    """A service's environment as a dict (Compose accepts a mapping or a KEY=VALUE list)."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


def command_strings(service: Mapping) -> list[str]:
    """Every string that ends up on a process command line: command, entrypoint, healthcheck test."""
    out = []
    for key in ("command", "entrypoint"):
        value = service.get(key)
        out += [value] if isinstance(value, str) else list(value or [])
    test = (service.get("healthcheck") or {}).get("test")
    out += [test] if isinstance(test, str) else list(test or [])
    return [str(item) for item in out]


def command_text(service: Mapping) -> str:
    return " ".join(command_strings(service))


_UNITS = {"b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def memory_bytes(value) -> int:
    """Compose / JVM memory sizes: 512m, 1g, 1536m, 2048 (bytes)."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([bkmg])?b?", str(value).strip().lower())
    assert match, f"not a memory size: {value!r}"
    return int(float(match[1]) * _UNITS[match[2] or "b"])


def is_one_shot(service: Mapping) -> bool:
    return str(service.get("restart", "no")) == "no"
