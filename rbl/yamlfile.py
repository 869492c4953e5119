"""YAML that remembers where each value came from, so errors name file and line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from rbl.errors import ConfigError


class Located(dict):
    """A mapping read from YAML; knows the file and the line of each key."""

    path: str
    line: int
    lines: dict

    def where(self, key: str | None = None) -> int:
        """The line of ``key`` (or of the mapping itself)."""
        return self.lines.get(key, self.line) if key is not None else self.line

    def error(self, message: str, key: str | None = None) -> ConfigError:
        return ConfigError(message, self.path, self.where(key))


class LocatedList(list):
    path: str
    line: int
    lines: list


def _loader(path: str) -> type:
    class Loader(yaml.SafeLoader):
        pass

    def mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> Located:
        loader.flatten_mapping(node)
        out = Located()
        out.path, out.line, out.lines = path, node.start_mark.line + 1, {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if key in out:
                raise ConfigError(f"duplicate key {key!r}", path, key_node.start_mark.line + 1)
            out[key] = loader.construct_object(value_node, deep=True)
            out.lines[key] = key_node.start_mark.line + 1
        return out

    def sequence(loader: yaml.SafeLoader, node: yaml.SequenceNode) -> LocatedList:
        out = LocatedList(loader.construct_object(child, deep=True) for child in node.value)
        out.path, out.line = path, node.start_mark.line + 1
        out.lines = [child.start_mark.line + 1 for child in node.value]
        return out

    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, sequence)
    return Loader


def load(path: str | Path, display: str | None = None) -> Any:
    """Load one YAML file; mappings come back as :class:`Located`.

    :raises ConfigError: for unreadable files and YAML syntax errors, with the line.
    """
    name = display or str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read: {exc}", name) from None
    try:
        return yaml.load(text, Loader=_loader(name))  # noqa: S506 - SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise ConfigError(f"YAML syntax error: {exc.problem or exc}", name, line) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"YAML error: {exc}", name) from None


def check_keys(node: Any, allowed: set[str], required: set[str], what: str, path: str, line: int) -> Located:
    """Require a mapping with only known keys and all required ones."""
    if not isinstance(node, Located):
        raise ConfigError(f"{what} must be a mapping", path, line)
    for key in node:
        if key not in allowed:
            expected = ", ".join(sorted(allowed))
            raise node.error(f"unknown key {key!r} in {what} (expected {expected})", key)
    for key in sorted(required - set(node)):
        raise node.error(f"{what} lacks the required key {key!r}")
    return node
