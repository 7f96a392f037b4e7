"""Architecture: the pure core imports no edge library, data flows one way, one seam per outside system.

The folders tell the flow: ``intake`` (decode and authenticate calls) -> ``store`` (queue, links) ->
``worker`` -> ``portal`` (Bitrix24: protocol, client, pacer) -> ``mapping`` -> ``sync`` (the engine:
read, plan, find, write, close the loop).  ``web`` serves intake; ``boot``/``serve``/``cli`` wire it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

RELAY = Path(__file__).resolve().parents[1] / "relay"
PURE = ["phpquery", "intake", "portal/protocol", "portal/pacer", "mapping", "sync/notices", "yamlconf", "errors",
        "models", "redact"]
EDGE_LIBS = {"flask", "werkzeug", "requests", "tenacity", "sqlalchemy", "gunicorn", "alembic", "psycopg"}
# part -> relay parts it must never import (they run after it, or belong to the other side)
FORBIDDEN = {
    "intake": {"store", "web", "sync", "worker", "portal", "sweep", "mapping", "boot", "serve", "cli"},
    "store": {"web", "sync", "worker", "portal", "intake", "mapping", "sweep", "boot", "serve", "cli"},
    "web": {"sync", "worker", "portal", "sweep", "mapping", "serve", "boot", "cli"},
    "portal": {"web", "sync", "worker", "store", "intake", "mapping", "sweep", "boot", "serve", "cli"},
    "mapping": {"web", "sync", "worker", "store", "intake", "portal", "sweep", "boot", "serve", "cli"},
    "sync": {"web", "worker", "intake", "sweep", "boot", "serve", "cli"},
    "worker": {"web", "intake", "boot", "serve", "cli"},
}


def files(part: str) -> list[Path]:
    """The source files of a part of the package: a folder, a module, or ``folder/module``."""
    path = RELAY / part
    return sorted(path.rglob("*.py")) if path.is_dir() else [RELAY / f"{part}.py"]


def imports(part: str) -> set[str]:
    """Modules imported anywhere in ``part``."""
    names: set[str] = set()
    for node in (n for f in files(part) for n in ast.walk(ast.parse(f.read_text()))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_every_listed_part_exists() -> None:
    for part in [*PURE, *FORBIDDEN]:
        assert all(f.is_file() for f in files(part)) and files(part), part


@pytest.mark.parametrize("part", PURE)
def test_pure_parts_import_no_edge_library(part: str) -> None:
    used = {name.split(".")[0] for name in imports(part)}
    assert not used & EDGE_LIBS, f"relay/{part} imports {used & EDGE_LIBS}"


@pytest.mark.parametrize(("part", "banned"), FORBIDDEN.items())
def test_data_flows_one_way(part: str, banned: set[str]) -> None:
    used = {name.split(".")[1] for name in imports(part) if name.startswith("relay.")}
    assert not used & banned, f"relay/{part} imports {used & banned}"


SOURCES = sorted(p for p in RELAY.rglob("*.py") if "emulator" not in p.parts and "migrations" not in p.parts)


def users_of(libs: set[str]) -> list[str]:
    found = []
    for path in SOURCES:
        tree = ast.parse(path.read_text())
        names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        names |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        if libs & {n.split(".")[0] for n in names}:
            found.append(str(path.relative_to(RELAY)))
    return found


def test_only_the_client_imports_requests_and_tenacity() -> None:
    assert users_of({"requests", "tenacity"}) == ["portal/client.py"]


def test_only_the_store_speaks_sql() -> None:
    users = users_of({"sqlalchemy", "sqlite3", "alembic", "psycopg"})
    assert users and all(u.startswith("store/") for u in users), users
    assert "INSERT INTO jobs" in (RELAY / "store" / "sqlite.py").read_text()
