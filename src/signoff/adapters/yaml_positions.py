"""YAML loading that remembers where every key and value came from.

PyYAML's composer gives each node its start mark; we build plain Python data from
the nodes and keep two maps from a path (``("policies", 0, "match", "type")``) to
1-based ``(line, column)``: one for values, one for keys. Validation errors (which
pydantic reports as such paths) can then be shown as ``file:line:column``.

``salvage_located`` goes one step further for checkers that want every problem in one
run: it reports a model's validation errors, then drops (or stands in for) exactly the
parts that were wrong and validates again, so that what was right can still be checked.
"""

from __future__ import annotations

import copy
import difflib
import os
import re
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import yaml
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

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
    text: str = ""
    spans: dict[Path, tuple[int, int]] = field(default_factory=dict)  # scalars, in text

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

    def where_in(self, path: Sequence[str | int], offset: int) -> tuple[int, int]:
        """The position of the character at ``offset`` of a string value (a CEL
        expression, say): the value is matched against its source text, so quotes,
        block indicators, indentation and folded line breaks are stepped over. Falls
        back to the value's own position when they cannot be matched (an escape)."""
        p = tuple(path)
        value, span = self.get(p), self.spans.get(p)
        if isinstance(value, str) and value and offset == len(value):  # just after the end
            line, col = self.where_in(p, offset - 1)
            return line, col + 1
        if span is None or not isinstance(value, str) or not 0 <= offset < len(value):
            return self.where(p)
        start, end = span
        i = 0
        for j in range(start, end):
            if self.text[j] == value[i]:
                if i == offset:
                    return self._line_col(j)
                i += 1
        return self.where(p)

    def _line_col(self, index: int) -> tuple[int, int]:
        line = self.text.count("\n", 0, index) + 1
        return line, index - (self.text.rfind("\n", 0, index) + 1) + 1

    def get(self, path: Sequence[str | int]) -> Any:
        """The data at a path, or None when there is none."""
        node = self.data
        for part in path:
            if not _has(node, part):
                return None
            node = node[part]
        return node

    def remove(self, path: Path) -> None:
        """Take a key or a list item out of the data (in place). Positions follow: those
        under the removed part are forgotten, and a list's later items move up one, so
        every remaining path still names where its data came from."""
        parent, last = self.get(path[:-1]), path[-1]
        n = len(path) - 1
        if not _has(parent, last):
            return
        del parent[last]
        for table in (self.values, self.keys, self.styles, self.spans):
            moved: dict[Path, Any] = {}
            for p, v in table.items():
                if len(p) > n and p[:n] == path[:n]:
                    i = p[n]
                    if i == last:
                        continue
                    if isinstance(i, int) and isinstance(last, int) and i > last:
                        p = (*p[:n], i - 1, *p[n + 1 :])
                moved[p] = v
            table.clear()
            table.update(moved)

    def copy(self) -> Located:
        return Located(
            self.file,
            copy.deepcopy(self.data),
            dict(self.values),
            dict(self.keys),
            dict(self.styles),
            self.text,
            dict(self.spans),
        )


def _has(node: Any, part: str | int) -> bool:
    """Whether data has a key or list item."""
    if isinstance(node, list):
        return isinstance(part, int) and 0 <= part < len(node)
    return isinstance(node, dict) and part in node


# What an unclosed construct is called, from the parser's context ("while parsing a ...").
_OPENED = {"flow sequence": "'['", "flow mapping": "'{'", "quoted scalar": "quoted string"}
_INDENTATION = ("expected <block end>", "mapping values are not allowed here")


def _yaml_problem(exc: yaml.MarkedYAMLError) -> tuple[tuple[int, int], str]:
    """Where a YAML error is, and what it is. The parser marks where it gave up
    (``problem_mark``) and what it was reading (``context_mark``). When it gave up at
    the end of the file, or on a later line than a '[', '{' or quote it was inside,
    the mistake is that opening left unclosed, so that is where we point."""
    problem, context = exc.problem or "", exc.context or ""
    pm, cm = exc.problem_mark, exc.context_mark
    opened = next((name for key, name in _OPENED.items() if key in context), None)
    at_end = "end of stream" in problem or "<stream end>" in problem
    if cm is not None and opened and (pm is None or at_end or pm.line != cm.line):
        found = f" at line {pm.line + 1}" if pm is not None and not at_end else ""
        return (cm.line + 1, cm.column + 1), (
            f"YAML error: this {opened} is never closed ({problem}{found})"
        )
    mark = pm or cm
    where = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    hint = ""
    if problem.startswith(_INDENTATION):
        hint = " (check this line's indentation; quote a value that contains ': ')"
    return where, f"YAML error: {problem or context or 'invalid YAML'}{hint}"


MAX_VALUES = 200_000  # keys and values in one document, aliases counted where used
MAX_DEPTH = 64  # levels of nested mappings and lists


class _TooLarge(Exception):
    """A document past MAX_VALUES or MAX_DEPTH (an alias bomb, say), with where."""

    def __init__(self, node: yaml.Node, message: str) -> None:
        self.where = (node.start_mark.line + 1, node.start_mark.column + 1)
        self.message = message


def load_located(file: str, text: str, errors: ErrorList) -> Located | None:
    """Parse one YAML document; on a YAML error, record it and return None. A document
    nested deeper than MAX_DEPTH or holding more than MAX_VALUES values is an error too,
    so that no file can hang or crash a reader."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        located = Located(file, None, text=text)
        if node is None:
            located.data = {}
            return located
        located.data = _build(loader, node, (), located, errors, [MAX_VALUES])
        return located
    except _TooLarge as exc:
        errors.add(file, *exc.where, f"YAML error: {exc.message}")
        return None
    except RecursionError:  # the parser's own recursion, before MAX_DEPTH is reached
        errors.add(file, 1, 1, f"YAML error: nested deeper than {MAX_DEPTH} levels")
        return None
    except yaml.MarkedYAMLError as exc:
        (line, col), message = _yaml_problem(exc)
        errors.add(file, line, col, message)
        return None
    except yaml.YAMLError as exc:
        errors.add(file, 1, 1, f"YAML error: {exc}")
        return None
    finally:
        loader.dispose()


def _build(
    loader: yaml.SafeLoader,
    node: yaml.Node,
    path: Path,
    out: Located,
    errors: ErrorList,
    budget: list[int],
) -> Any:
    budget[0] -= 1
    if budget[0] < 0:
        raise _TooLarge(node, f"more than {MAX_VALUES} values (an alias repeated too often?)")
    if len(path) > MAX_DEPTH:
        raise _TooLarge(node, f"nested deeper than {MAX_DEPTH} levels")
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
            result[key] = _build(loader, value_node, child, out, errors, budget)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [
            _build(loader, item, (*path, i), out, errors, budget)
            for i, item in enumerate(node.value)
        ]
    out.styles[path] = node.style if isinstance(node, yaml.ScalarNode) else None
    out.spans[path] = (node.start_mark.index, node.end_mark.index)
    return loader.construct_object(node, deep=True)


# -- validation ------------------------------------------------------------------------


def _step(annotation: Any, part: str | int) -> Any:
    """The type found one step (a field name, a list index) into a type, or None."""
    if typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    if _is_model(annotation):
        found = annotation.model_fields.get(part) if isinstance(part, str) else None
        return found.annotation if found is not None else None
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        for member in typing.get_args(annotation):
            stepped = _step(member, part)
            if stepped is not None:
                return stepped
        return None
    if origin is list and isinstance(part, int):
        return typing.get_args(annotation)[0]
    if origin is dict and isinstance(part, str):
        return typing.get_args(annotation)[1]
    return None


def _model_at(model: type[BaseModel], path: Path) -> type[BaseModel] | None:
    """The model that holds the data at ``path`` (its innermost one), or None."""
    annotation: Any = model
    for part in path:
        annotation = _step(annotation, part)
    for member in (annotation, *typing.get_args(annotation)):
        if _is_model(member):
            return typing.cast(type[BaseModel], member)
    return None


def _is_model(annotation: Any) -> bool:
    return (
        typing.get_origin(annotation) is None
        and isinstance(annotation, type)
        and issubclass(annotation, BaseModel)
    )


def _field_at(model: type[BaseModel], path: Path) -> FieldInfo | None:
    """The field a path ends in, when its parent is a model."""
    parent = _model_at(model, path[:-1]) if path else None
    last = path[-1] if path else None
    return parent.model_fields.get(last) if parent and isinstance(last, str) else None


def closest(word: str, choices: Iterable[str]) -> str | None:
    """The choice a misspelt word most likely meant, if any is close enough: one typing
    slip away (a letter added, dropped, changed or two swapped: ``bbo`` for ``bob``),
    else similar enough by difflib's measure."""
    options = sorted(choices)
    slips = [c for c in options if _one_slip(word, c)]
    close = slips or difflib.get_close_matches(word, options, n=1, cutoff=0.75)
    if not close:
        return None
    return max(close, key=lambda c: difflib.SequenceMatcher(None, word, c).ratio())


def _one_slip(a: str, b: str) -> bool:
    if a == b or abs(len(a) - len(b)) > 1 or min(len(a), len(b)) < 2:
        return False
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        swapped = len(diff) == 2 and diff[1] == diff[0] + 1 and a[diff[0]] == b[diff[1]]
        return len(diff) == 1 or (swapped and a[diff[1]] == b[diff[0]])
    short, long = (a, b) if len(a) < len(b) else (b, a)
    return any(long[:i] + long[i + 1 :] == short for i in range(len(long)))


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` for the closest choice, or ``""``."""
    close = closest(word, choices)
    return f"; did you mean {close!r}?" if close else ""


_TYPE_WORDS = {"str": "a string", "list[str]": "a list of strings", "int": "a number"}


@dataclass(frozen=True)
class _Failure:
    """One pydantic error, with its path into the data (a union's member names, which
    pydantic puts in its locations, taken out) and the union it was found in, if any."""

    path: Path
    type: str
    message: str
    union: tuple[Path, str] | None  # (the union's path, the member tried)


def _failures(data: Any, exc: ValidationError) -> list[_Failure]:
    found = []
    for err in exc.errors():
        loc = [p for p in err["loc"] if isinstance(p, str | int)]
        path: list[str | int] = []
        node, union = data, None
        for i, part in enumerate(loc):
            if _has(node, part):
                node = node[part]
            elif err["type"] == "missing" and i == len(loc) - 1:
                node = None
            else:  # a union member's name
                union = (tuple(path), str(part))
                continue
            path.append(part)
        found.append(_Failure(tuple(path), err["type"], str(err["msg"]), union))
    return found


def _readable(message: str) -> str:
    message = message.removeprefix("Value error, ")
    return re.sub(r"a valid dictionary( or instance of \w+)?", "a mapping", message)


def _report(
    model: type[BaseModel],
    located: Located,
    errors: ErrorList,
    prefix: Path,
    failures: list[_Failure],
) -> None:
    """Each failure as one ``file:line:column: message``. A value that fits no member
    of a union gets one message; when it is shaped like one member (a list) but wrong
    inside, only that member's complaints are kept."""
    deepest: dict[Path, int] = {}
    for f in failures:
        if f.union is not None:
            deepest[f.union[0]] = max(deepest.get(f.union[0], 0), len(f.path))
    merged: dict[Path, list[str]] = {}
    for f in failures:
        if f.union is not None:
            upath, member = f.union
            if len(f.path) < deepest[upath]:
                continue
            if len(f.path) == len(upath):
                merged.setdefault(upath, []).append(_TYPE_WORDS.get(member, member))
                continue
        full = (*prefix, *f.path)
        dotted = ".".join(str(p) for p in full) or "(document)"
        if f.type == "extra_forbidden":
            key = str(f.path[-1])
            parent = _model_at(model, f.path[:-1])
            hint = did_you_mean(key, list(parent.model_fields)) if parent else ""
            line, col = located.where(full, key=True)
            at = f" at {dotted}" if len(full) > 1 else ""
            errors.add(located.file, line, col, f"unknown key {key!r}{at}{hint}")
        elif f.type == "missing":
            where = ".".join(str(p) for p in full[:-1])
            line, col = located.where(full)
            errors.add(
                located.file,
                line,
                col,
                f"missing key {full[-1]!r}" + (f" in {where}" if where else ""),
            )
        else:
            line, col = located.where(full)
            errors.add(located.file, line, col, f"{dotted}: {_readable(f.message)}")
    for upath, words in merged.items():
        full = (*prefix, *upath)
        dotted = ".".join(str(p) for p in full)
        line, col = located.where(full)
        errors.add(located.file, line, col, f"{dotted}: should be {' or '.join(words)}")


def validate_located(
    model: type[M], located: Located, errors: ErrorList, prefix: Path = ()
) -> M | None:
    """Validate data against a pydantic model; errors become file:line:column problems."""
    data = located.get(prefix)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        _report(model, located, errors, prefix, _failures(data, exc))
        return None


@dataclass(frozen=True)
class Salvaged(Generic[M]):
    """What validated once the wrong parts were taken out.

    ``doc`` is the document without them (positions still those of the file) and
    ``damaged`` the paths where something was removed or stood in for; a check that
    reads a damaged part would report a consequence of a mistake already reported."""

    model: M | None
    doc: Located
    damaged: frozenset[Path]

    def hurt(self, *path: str | int) -> bool:
        """Whether anything at or under ``path`` was removed or stood in for."""
        n = len(path)
        return any(d[:n] == path for d in self.damaged)


def salvage_located(
    model: type[M],
    located: Located,
    errors: ErrorList,
    prefix: Path = (),
    stand_ins: Mapping[str, Any] | None = None,
) -> Salvaged[M]:
    """Validate, report every error, then keep what is right.

    Each wrong part is dropped: an unknown key, a wrong value of a field that has a
    default, a wrong list item. A required field that is wrong or missing takes its
    value from ``stand_ins`` (by field name) if there is one; otherwise what contains
    it is dropped instead. Then the rest is validated again (the errors of that round
    are consequences, not reported). ``model`` is None when nothing could be kept."""
    data = located.get(prefix)
    try:
        return Salvaged(model.model_validate(data), located, frozenset())
    except ValidationError as exc:
        failures = _failures(data, exc)
    _report(model, located, errors, prefix, failures)
    doc = located.copy()
    damaged: set[Path] = set()
    stood: set[Path] = set()
    for _ in range(20):
        removals: set[Path] = set()
        for f in failures:
            target = _prune_target(model, f, stand_ins or {}, stood)
            if target == ():
                return Salvaged(None, doc, frozenset(damaged))
            if target is not None:
                removals.add(target)
        for p in stood:
            parent = doc.get((*prefix, *p[:-1]))
            if (*prefix, *p) not in damaged and isinstance(parent, dict):
                parent[p[-1]] = copy.deepcopy((stand_ins or {})[str(p[-1])])
                damaged.add((*prefix, *p))
        # the deepest first, and a list's later items before its earlier ones (which
        # would move them)
        order = sorted(removals, key=lambda p: (len(p), [_sortable(x) for x in p]), reverse=True)
        for p in order:
            if any(p[: len(q)] == q and p != q for q in removals):
                continue  # inside something removed anyway
            doc.remove((*prefix, *p))
            damaged.add((*prefix, *(p[:-1] if isinstance(p[-1], int) else p)))
        data = doc.get(prefix)
        try:
            return Salvaged(model.model_validate(data), doc, frozenset(damaged))
        except ValidationError as exc:
            failures = _failures(data, exc)
    return Salvaged(None, doc, frozenset(damaged))


def _sortable(part: str | int) -> tuple[int, int, str]:
    return (0, part, "") if isinstance(part, int) else (1, 0, part)


def _prune_target(
    model: type[BaseModel], f: _Failure, stand_ins: Mapping[str, Any], stood: set[Path]
) -> Path | None:
    """What to drop for one failure: the path to remove; None when a stand-in was
    chosen (added to ``stood``); ``()`` when the whole document must go."""
    p = f.union[0] if f.union is not None and len(f.path) <= len(f.union[0]) else f.path
    if f.type == "extra_forbidden":
        return p
    while p:
        if isinstance(p[-1], int):
            return p
        info = _field_at(model, p)
        if info is None or not info.is_required():
            return p
        if p[-1] in stand_ins and p not in stood:
            stood.add(p)
            return None
        p = p[:-1]
    return ()


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
