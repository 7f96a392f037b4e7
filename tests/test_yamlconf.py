"""Tests for relay.yamlconf: safe loading, ${VAR} substitution, key-path lines, error messages."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from relay.errors import ConfigError
from relay.yamlconf import LoadedYaml, format_loc, load_yaml, validate


def write(tmp_path: Path, text: str, name: str = "conf.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def load_text(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> LoadedYaml:
    return load_yaml(write(tmp_path, text), env or {})


def load_error(path: Path, env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        load_yaml(path, env or {})
    return str(info.value)


# --- format_loc -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("loc", "expected"),
    [
        (("sources", 0, "webhook_url"), "sources[0].webhook_url"),
        (("fields", "STAGE_ID", "map", "C1:NEW"), "fields.STAGE_ID.map.C1:NEW"),
        ((0, "a"), "[0].a"),
        (("a", 1, 2), "a[1][2]"),
        (("link_field",), "link_field"),
        ((), ""),
    ],
)
def test_format_loc(loc: tuple[str | int, ...], expected: str) -> None:
    assert format_loc(loc) == expected


# --- data and lines ---------------------------------------------------------------------------

NESTED = """\
# a comment
sources:
  - id: a
    url: https://a.example
  - id: b
    tags:
      - x
      - y
fields:
  79: "112"
  flow: {k: 1, j: [1, 2]}
"""


def test_data_is_plain_python(tmp_path: Path) -> None:
    loaded = load_text(tmp_path, NESTED)
    assert loaded.data == {
        "sources": [{"id": "a", "url": "https://a.example"}, {"id": "b", "tags": ["x", "y"]}],
        "fields": {79: "112", "flow": {"k": 1, "j": [1, 2]}},
    }


@pytest.mark.parametrize(
    ("key_path", "line"),
    [
        ((), 2),
        (("sources",), 2),
        (("sources", 0), 3),
        (("sources", 0, "id"), 3),
        (("sources", 0, "url"), 4),
        (("sources", 1), 5),
        (("sources", 1, "tags", 1), 8),
        (("fields", 79), 10),
        (("fields", "flow", "j", 0), 11),
    ],
)
def test_lines_match_key_paths(tmp_path: Path, key_path: tuple[str | int, ...], line: int) -> None:
    assert load_text(tmp_path, NESTED).lines[key_path] == line


def test_merge_keys_and_aliases_resolve(tmp_path: Path) -> None:
    loaded = load_text(tmp_path, "base: &b\n  x: 1\n  y: 2\nother:\n  <<: *b\n  y: 3\n")
    assert loaded.data["other"] == {"x": 1, "y": 3}
    assert loaded.lines[("other", "y")] == 6
    assert loaded.lines[("other", "x")] == 2  # merged keys point at where they are written


def test_empty_file_is_none(tmp_path: Path) -> None:
    loaded = load_text(tmp_path, "# nothing here\n")
    assert loaded.data is None and loaded.lines == {}


# --- ${VAR} substitution ----------------------------------------------------------------------

ENV = {"HOST": "esb.example", "EMPTY": "", "PORT": "8080"}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("${HOST}", "esb.example"),
        ("https://${HOST}:${PORT}/x", "https://esb.example:8080/x"),
        ("${MISSING:-fallback}", "fallback"),
        ("${HOST:-fallback}", "esb.example"),
        ("${EMPTY:-fallback}", "fallback"),  # shell semantics: empty counts as unset
        ("${EMPTY}", ""),
        ("${MISSING:-}", ""),
        ("$${HOST}", "${HOST}"),
        ("cost $5 {x}", "cost $5 {x}"),
        ("a $${HOST} b ${HOST}", "a ${HOST} b esb.example"),
    ],
)
def test_placeholders_in_string_values(tmp_path: Path, value: str, expected: str) -> None:
    loaded = load_text(tmp_path, f"v: '{value}'\nlist: ['{value}']\n", ENV)
    assert loaded.data == {"v": expected, "list": [expected]}


def test_substitution_keeps_types_and_keys(tmp_path: Path) -> None:
    loaded = load_text(tmp_path, "port: 8080\nflag: true\n${HOST}: 1\nn: null\n", ENV)
    assert loaded.data == {"port": 8080, "flag": True, "${HOST}": 1, "n": None}


def test_substituted_value_is_not_substituted_again(tmp_path: Path) -> None:
    assert load_text(tmp_path, "v: ${A}\n", {"A": "${B}"}).data == {"v": "${B}"}


def test_missing_variable_names_file_key_path_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "sources:\n  - id: a\n    webhook_url: https://x/${WEBHOOK}/\n")
    message = load_error(path)
    assert message == f"{path}: sources[0].webhook_url (line 3): environment variable WEBHOOK is not set"


def test_every_missing_variable_is_reported(tmp_path: Path) -> None:
    path = write(tmp_path, "a: ${ONE}\nb:\n  - ${TWO}\n")
    lines = load_error(path).splitlines()
    assert lines == [
        f"{path}: a (line 1): environment variable ONE is not set",
        f"{path}: b[0] (line 3): environment variable TWO is not set",
    ]


@pytest.mark.parametrize("value", ["${", "${1X}", "${A B}", "${A"])
def test_malformed_placeholder(tmp_path: Path, value: str) -> None:
    path = write(tmp_path, f"x:\n  y: '{value}'\n")
    assert f"{path}: x.y (line 2): malformed placeholder" in load_error(path, {"A": "1"})


# --- load errors ------------------------------------------------------------------------------


def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"
    assert load_error(path) == f"{path}: cannot read: No such file or directory"


def test_directory_is_unreadable(tmp_path: Path) -> None:
    assert load_error(tmp_path).startswith(f"{tmp_path}: cannot read: ")


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("a: 1\nb: [1, 2\nc: 3\n", 3),
        ("a: 1\n  b: 2\n", 2),
        ("a: 'unterminated\n", 2),
        ("a: 1\n---\nb: 2\n", 2),  # more than one document
        ("a: *nowhere\n", 1),
    ],
)
def test_yaml_syntax_error_names_file_and_line(tmp_path: Path, text: str, line: int) -> None:
    path = write(tmp_path, text)
    message = load_error(path)
    assert message.startswith(f"{path}: line {line}, column ")
    assert "invalid YAML" in message


def test_syntax_error_does_not_echo_the_text(tmp_path: Path) -> None:
    path = write(tmp_path, "token: hunter2-secret\n  oops: [\n")
    assert "hunter2" not in load_error(path)


@pytest.mark.parametrize(
    "text",
    [
        "a: !!python/object/apply:os.system ['echo pwned']\n",
        "a: !!python/name:os.system\n",
        "a: !custom {x: 1}\n",
        "a: !!set {x, y}\n",
        "a: &x [*x]\n",  # recursive alias
        "? [1, 2]\n: value\n",  # non-scalar key
    ],
)
def test_unsafe_or_unsupported_yaml_is_refused(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, text)
    message = load_error(path)
    assert message.startswith(f"{path}: line 1, column ")


# --- validate ---------------------------------------------------------------------------------


class Source(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    kind: Literal["webhook", "app"] = "webhook"
    webhook_url: str | int = ""
    api_token: int = 0
    password: str = ""

    @field_validator("password")
    @classmethod
    def _echoing_validator(cls, value: str) -> str:
        if len(value) < 12:
            raise ValueError(f"password {value} is too short")
        return value


class Conf(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    retries: int = 1
    sources: list[Source] = Field(default_factory=list)


GOOD = "name: relay\nsources:\n  - id: a\n    kind: app\n"


def test_validate_returns_the_model(tmp_path: Path) -> None:
    conf = validate(Conf, load_yaml(write(tmp_path, GOOD), {}))
    assert conf == Conf(name="relay", sources=[Source(id="a", kind="app")])


def test_validate_passes_context(tmp_path: Path) -> None:
    class WithContext(BaseModel):
        name: str

        @field_validator("name")
        @classmethod
        def _suffix(cls, value: str, info: ValidationInfo) -> str:
            return value + info.context["suffix"]

    loaded = load_yaml(write(tmp_path, "name: x\n"), {})
    assert validate(WithContext, loaded, context={"suffix": "!"}).name == "x!"


@pytest.mark.parametrize(
    ("text", "where", "fragment"),
    [
        ("name: r\nretries: many\n", "retries (line 2)", "valid integer"),
        ("name: r\nsources:\n  - id: a\n    colour: red\n", "sources[0].colour (line 4)", "Extra inputs"),
        ("name: r\nsources:\n  - kind: app\n", "sources[0].id (line 3)", "Field required"),
        ("name: r\nsources:\n  - id: a\n  - id: b\n    kind: robot\n", "sources[1].kind (line 5)",
         "'webhook' or 'app'"),
        ("retries: 2\n", "name (line 1)", "Field required"),
        ("- 1\n- 2\n", "<root> (line 1)", "valid dictionary"),
        ("name: r\nsources: {id: a}\n", "sources (line 2)", "valid list"),
    ],
)
def test_validation_error_names_file_key_path_and_line(
    tmp_path: Path, text: str, where: str, fragment: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        validate(Conf, load_yaml(path, {}))
    head, *rest = str(info.value).splitlines()
    assert head.startswith(f"{path}: invalid configuration")
    assert any(line.startswith(f"{path}: {where}: ") and fragment in line for line in rest), rest


def test_union_segments_are_skipped(tmp_path: Path) -> None:
    path = write(tmp_path, "name: r\nsources:\n  - id: a\n    webhook_url: [1]\n")
    with pytest.raises(ConfigError) as info:
        validate(Conf, load_yaml(path, {}))
    rest = str(info.value).splitlines()[1:]
    assert len(rest) == 2  # one per union member, both on the real key
    assert all(line.startswith(f"{path}: sources[0].webhook_url (line 4): ") for line in rest)


def test_one_line_per_error(tmp_path: Path) -> None:
    path = write(tmp_path, "retries: x\nextra: 1\n")
    with pytest.raises(ConfigError) as info:
        validate(Conf, load_yaml(path, {}))
    lines = str(info.value).splitlines()
    assert lines[0] == f"{path}: invalid configuration (3 problems)"
    assert sorted(line.split(": ")[1] for line in lines[1:]) == [
        "extra (line 2)", "name (line 1)", "retries (line 1)"]


@pytest.mark.parametrize(
    ("text", "redacted"),
    [
        ("name: r\nsources:\n  - id: a\n    api_token: s3cr3t-value-123\n", False),  # pydantic's msg
        ("name: r\nsources:\n  - id: a\n    password: s3cr3t-pw\n", True),  # validator echoes it
    ],
)
def test_secret_values_are_not_echoed(tmp_path: Path, text: str, redacted: bool) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        validate(Conf, load_yaml(path, {}))
    message = str(info.value)
    assert "s3cr3t" not in message
    assert ("***" in message) == redacted
    assert f"{path}: sources[0]." in message and "(line 4)" in message
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_secret_from_environment_is_not_echoed(tmp_path: Path) -> None:
    path = write(tmp_path, "name: r\nsources:\n  - id: a\n    api_token: ${TOKEN}\n")
    with pytest.raises(ConfigError) as info:
        validate(Conf, load_yaml(path, {"TOKEN": "tok-from-env"}))
    assert "tok-from-env" not in str(info.value)
    assert "sources[0].api_token (line 4)" in str(info.value)
