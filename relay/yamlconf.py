"""Pure: load YAML config files with ``${VAR}`` placeholders; report errors by file, key and line.

``load_yaml`` composes the node tree with PyYAML's *safe* loader and builds plain data from it
itself, so every key path gets the 1-based line where that key or list item starts.  String
values (not keys) may hold ``${VAR}`` or ``${VAR:-default}`` (the default is used when ``VAR`` is
unset or empty, as in the shell); ``$${`` is a literal ``${``.  ``validate`` runs a pydantic model
over the data and turns its ``ValidationError`` into one :class:`~relay.errors.ConfigError` with a
line per problem: ``<file>: <key.path> (line N): <message>``.

Messages never echo values: they are built from pydantic's ``msg`` only, and values under
secret-looking keys are redacted even if a custom validator put them into its message.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from relay.errors import ConfigError

M = TypeVar("M", bound=BaseModel)
KeyPath = tuple[Any, ...]

_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
# `$${` (escape) | `${NAME}` / `${NAME:-default}` | any other `${` (malformed)
_PLACEHOLDER = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|\$\{")
_ABSENT = object()
_SECRETISH = re.compile(r"secret|token|key|password|webhook", re.IGNORECASE)


@dataclass(frozen=True)
class LoadedYaml:
    """A parsed YAML file: plain data after substitution and the line of every key path."""

    path: Path
    data: Any
    lines: Mapping[tuple[str | int, ...], int]


def format_loc(loc: Sequence[str | int]) -> str:
    """``("sources", 0, "webhook_url")`` -> ``"sources[0].webhook_url"``."""
    out = ""
    for part in loc:
        if isinstance(part, int) and not isinstance(part, bool):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def load_yaml(path: Path, env: Mapping[str, str]) -> LoadedYaml:
    """Safely load ``path``, substitute ``${VAR}`` from ``env``; ``ConfigError`` on any problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(f"{path}: cannot read: {reason}") from None
    try:
        loader = yaml.SafeLoader(text)
    except yaml.reader.ReaderError as exc:
        where = f"at character {exc.position}"
        raise ConfigError(f"{path}: invalid YAML: {exc.reason} {where}") from None
    builder = _Builder(loader, path, env)
    try:
        root = loader.get_single_node()
        data = builder.build(root, ()) if root is not None else None
    except yaml.MarkedYAMLError as exc:
        raise ConfigError(_yaml_error(path, exc)) from None
    except yaml.YAMLError as exc:  # unmarked errors (rare): the class name is all we show
        raise ConfigError(f"{path}: invalid YAML: {type(exc).__name__}") from None
    finally:
        loader.dispose()
    if builder.errors:
        raise ConfigError("\n".join(builder.errors))
    return LoadedYaml(path=path, data=data, lines=dict(builder.lines))


def validate(model: type[M], loaded: LoadedYaml, *, context: dict[str, Any] | None = None) -> M:
    """Validate ``loaded.data`` with ``model``; one ``ConfigError`` names file, key and line."""
    try:
        return model.model_validate(loaded.data, context=context)
    except PydanticValidationError as exc:
        errors = exc.errors(include_url=False)
        count = f"{len(errors)} problem{'s' if len(errors) != 1 else ''}"
        head = f"{loaded.path}: invalid configuration ({count})"
        body = [_error_line(loaded, err) for err in errors]
        raise ConfigError("\n".join([head, *body])) from None


def line_of(loaded: LoadedYaml, path: Sequence[Any]) -> int | None:
    """Line of the deepest prefix of ``path`` that exists in the file (None for an empty file)."""
    for end in range(len(path), -1, -1):
        line = loaded.lines.get(tuple(path[:end]))
        if line is not None:
            return line
    return None


def problem(message: str) -> PydanticCustomError:
    """An error a validator can raise whose message is shown as written (braces included)."""
    return PydanticCustomError("config", message)


def raise_problems(
    problems: Sequence[tuple[tuple[str | int, ...], str]], title: str = "config"
) -> None:
    """From a validator, raise one error per ``(loc, message)``, each nested under the caller's loc.

    Lets cross-field checks point at the offending key (and so its line) instead of the model.
    """
    if problems:
        details = [
            InitErrorDetails(type=problem(msg), loc=loc, input=None) for loc, msg in problems
        ]
        raise PydanticValidationError.from_exception_data(title, details)


def scalar_text(item: Any) -> str:
    """A YAML key or value that must be text: ints become strings; bools, floats, nulls are refused.

    Unquoted ``yes``/``on``/``1.0``/``~`` are not strings in YAML; asking for quotes beats guessing.
    """
    if isinstance(item, str) or (isinstance(item, int) and not isinstance(item, bool)):
        return str(item)
    raise ValueError(f"{item!r} must be a string or an integer; quote it in the YAML")


def normalize_dict(
    value: Any, key_of: Callable[[Any], str], value_of: Callable[[Any], Any] = lambda item: item
) -> Any:
    """Before-validator helper: rebuild a dict through ``key_of``/``value_of`` (which raise
    ``ValueError``); each bad item, or a key that normalizes twice, is reported at its own key."""
    if not isinstance(value, dict):
        return value  # the model reports the wrong type
    out: dict[str, Any] = {}
    problems: list[tuple[tuple[str | int, ...], str]] = []
    for key, item in value.items():
        try:
            text = key_of(key)
            if text in out:
                raise ValueError(f"key {text!r} appears twice")
            out[text] = value_of(item)
        except ValueError as exc:
            problems.append(((key,), str(exc)))
    raise_problems(problems)
    return out


# --- building data from nodes ------------------------------------------------------------------


class _Builder:
    """Walks a composed node tree into plain data, recording lines and substitution errors."""

    def __init__(self, loader: yaml.SafeLoader, path: Path, env: Mapping[str, str]) -> None:
        self.loader = loader
        self.path = path
        self.env = env
        self.lines: dict[KeyPath, int] = {}
        self.errors: list[str] = []
        self._active: set[int] = set()

    def build(self, node: Node, kpath: KeyPath) -> Any:
        """Plain value for ``node`` found at ``kpath``."""
        if not kpath:
            self.lines[()] = node.start_mark.line + 1
        if id(node) in self._active:
            raise yaml.constructor.ConstructorError(
                None, None, "recursive alias: a node contains itself", node.start_mark
            )
        self._active.add(id(node))
        try:
            if isinstance(node, MappingNode):
                return self._mapping(node, kpath)
            if isinstance(node, SequenceNode):
                return self._sequence(node, kpath)
            return self._scalar(node, kpath)
        finally:
            self._active.discard(id(node))

    def _mapping(self, node: MappingNode, kpath: KeyPath) -> dict[Any, Any]:
        self._check_tag(node, _MAP_TAG)
        self.loader.flatten_mapping(node)  # resolves `<<` merge keys in place
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                raise yaml.constructor.ConstructorError(
                    None, None, "mapping keys must be plain scalars", key_node.start_mark
                )
            key = self.loader.construct_object(key_node, deep=True)
            self.lines[(*kpath, key)] = key_node.start_mark.line + 1
            out[key] = self.build(value_node, (*kpath, key))
        return out

    def _sequence(self, node: SequenceNode, kpath: KeyPath) -> list[Any]:
        self._check_tag(node, _SEQ_TAG)
        out: list[Any] = []
        for index, item in enumerate(node.value):
            self.lines[(*kpath, index)] = item.start_mark.line + 1
            out.append(self.build(item, (*kpath, index)))
        return out

    def _scalar(self, node: Node, kpath: KeyPath) -> Any:
        value = self.loader.construct_object(node, deep=True)
        if isinstance(value, str) and "${" in value:
            return self._substitute(value, kpath, node.start_mark.line + 1)
        return value

    def _substitute(self, text: str, kpath: KeyPath, line: int) -> str:
        where = f"{self.path}: {format_loc(kpath) or '<root>'} (line {line})"

        def replace(match: re.Match[str]) -> str:
            whole, name, default = match.group(0), match.group(1), match.group(2)
            if whole == "$${":
                return "${"
            if name is None:
                self.errors.append(f"{where}: malformed placeholder; use ${{VAR}} or ${{VAR:-x}}")
                return whole
            value = self.env.get(name)
            if default is not None and not value:
                return default
            if value is None:
                self.errors.append(f"{where}: environment variable {name} is not set")
                return whole
            return value

        return _PLACEHOLDER.sub(replace, text)

    @staticmethod
    def _check_tag(node: Node, expected: str) -> None:
        if node.tag != expected:
            raise yaml.constructor.ConstructorError(
                None, None, f"unsupported YAML tag {node.tag!r}", node.start_mark
            )


def _yaml_error(path: Path, exc: yaml.MarkedYAMLError) -> str:
    """``<file>: line N, column C: invalid YAML: <problem>`` without echoing the file's text."""
    mark = exc.problem_mark or exc.context_mark
    where = f" line {mark.line + 1}, column {mark.column + 1}:" if mark is not None else ""
    what = "; ".join(part for part in (exc.context, exc.problem) if part) or "syntax error"
    return f"{path}:{where} invalid YAML: {what}"


# --- turning pydantic errors into lines --------------------------------------------------------


def _real_path(loc: Sequence[Any], data: Any, missing: bool) -> tuple[tuple[Any, ...], list[Any]]:
    """Keep the ``loc`` segments that are real keys in ``data``; skip union/tag/``[key]`` segments.

    Returns the path as keys (for ``lines``) and as shown (dict keys as text, list indexes as ints).
    """
    path: list[Any] = []
    shown: list[Any] = []
    current = data
    for position, part in enumerate(loc):
        if isinstance(current, dict) and (key := _dict_key(current, part)) is not _ABSENT:
            path.append(key)
            shown.append(str(key))
            current = current[key]
        elif isinstance(current, list) and _is_index(part) and 0 <= part < len(current):
            path.append(part)
            shown.append(part)
            current = current[part]
        elif missing and position == len(loc) - 1:
            path.append(part)  # the required key that is absent
            shown.append(str(part))
    return tuple(path), shown


def _dict_key(mapping: dict[Any, Any], part: Any) -> Any:
    """The key of ``mapping`` that ``part`` names: equal (True == 1) or equal as text (79, "79")."""
    for key in mapping:
        if key == part and type(key) is type(part):
            return key
    for key in mapping:
        if key == part or str(key) == str(part):
            return key
    return _ABSENT


def _is_index(part: Any) -> bool:
    return isinstance(part, int) and not isinstance(part, bool)


def _error_line(loaded: LoadedYaml, err: Any) -> str:
    path, shown = _real_path(err["loc"], loaded.data, err["type"] == "missing")
    line = line_of(loaded, path)
    at = f" (line {line})" if line is not None else ""
    msg = str(err["msg"])
    value = err.get("input")
    secret = any(isinstance(p, str) and _SECRETISH.search(p) for p in path)
    if secret and isinstance(value, str) and value and value in msg:
        msg = msg.replace(value, "***")
    return f"{loaded.path}: {format_loc(shown) or '<root>'}{at}: {msg}"
