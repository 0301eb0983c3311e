"""YAML loading that remembers where every key and value came from.

PyYAML's composer gives each node its start mark; we build plain Python data from
the nodes and keep two maps from a path (``("policies", 0, "match", "type")``) to
1-based ``(line, column)``: one for values, one for keys. Validation errors (which
pydantic reports as such paths) can then be shown as ``file:line:column``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from signoff.domain.errors import ErrorList, PolicyError

Path = tuple[str | int, ...]
M = TypeVar("M", bound=BaseModel)


@dataclass
class Located:
    file: str
    data: Any
    values: dict[Path, tuple[int, int]] = field(default_factory=dict)
    keys: dict[Path, tuple[int, int]] = field(default_factory=dict)
    styles: dict[Path, str | None] = field(default_factory=dict)

    def where(self, path: Sequence[str | int], key: bool = False) -> tuple[int, int]:
        """The position of a path, or of its nearest ancestor that exists."""
        p = tuple(path)
        while p:
            if key and p in self.keys:
                return self.keys[p]
            if p in self.values:
                return self.values[p]
            p = p[:-1]
        return self.values.get((), (1, 1))


def load_located(file: str, text: str, errors: ErrorList) -> Located | None:
    """Parse one YAML document; on a YAML error, record it and return None."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        located = Located(file, None)
        if node is None:
            located.data = {}
            return located
        located.data = _build(loader, node, (), located, errors)
        return located
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = exc.problem or exc.context or "invalid YAML"
        errors.add(file, line, col, f"YAML error: {problem}")
        return None
    except yaml.YAMLError as exc:
        errors.add(file, 1, 1, f"YAML error: {exc}")
        return None
    finally:
        loader.dispose()


def _build(
    loader: yaml.SafeLoader, node: yaml.Node, path: Path, out: Located, errors: ErrorList
) -> Any:
    out.values[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, str | int):
                errors.add(
                    out.file,
                    key_node.start_mark.line + 1,
                    key_node.start_mark.column + 1,
                    "keys must be strings",
                )
                continue
            if key in result:
                errors.add(
                    out.file,
                    key_node.start_mark.line + 1,
                    key_node.start_mark.column + 1,
                    f"duplicate key {key!r}",
                )
            child = (*path, key)
            out.keys[child] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            result[key] = _build(loader, value_node, child, out, errors)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_build(loader, item, (*path, i), out, errors) for i, item in enumerate(node.value)]
    out.styles[path] = node.style if isinstance(node, yaml.ScalarNode) else None
    return loader.construct_object(node, deep=True)


def validate_located(
    model: type[M], located: Located, errors: ErrorList, prefix: Path = ()
) -> M | None:
    """Validate data against a pydantic model; errors become file:line:column problems."""
    data = located.data
    for part in prefix:
        data = data[part]
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            loc = (*prefix, *(p for p in err["loc"] if isinstance(p, str | int)))
            is_key = err["type"] == "extra_forbidden"
            line, col = located.where(loc, key=is_key)
            field_path = ".".join(str(p) for p in loc) or "(document)"
            if is_key:
                message = f"unknown key {str(loc[-1])!r} at {field_path}"
            else:
                text = str(err["msg"]).removeprefix("Value error, ")
                message = f"{field_path}: {text}"
            errors.add(located.file, line, col, message)
        return None


def load_model_file(
    path: str | os.PathLike[str], model: type[M], what: str, errors: ErrorList
) -> tuple[Located, M]:
    """Read, parse and validate one YAML file; raise PolicyError with every problem
    found so far when any step fails."""
    file = str(path)
    try:
        with open(file, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as exc:
        errors.add(file, 1, 1, f"cannot read {what}: {exc}")
        raise PolicyError(errors.problems) from None
    doc = load_located(file, text, errors)
    parsed = validate_located(model, doc, errors) if doc is not None else None
    if parsed is None or doc is None:
        raise PolicyError(errors.problems)
    return doc, parsed
