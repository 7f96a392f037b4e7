"""Architecture: the pure core imports no edge library, and data flows one way."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

RELAY = Path(__file__).resolve().parents[1] / "relay"
PURE = ["phpquery", "inbound", "b24", "mapping", "yamlconf", "notices", "pacer", "errors", "models", "redact"]
EDGE_LIBS = {"flask", "werkzeug", "requests", "tenacity", "sqlalchemy", "gunicorn"}
# module -> relay modules it must never import (they run after it, or belong to the other side)
FORBIDDEN = {
    "web": {"pipeline", "worker", "client", "serve", "boot", "cli"},
    "inbound": {"store", "web", "pipeline", "worker", "client"},
    "store": {"web", "pipeline", "worker", "client", "inbound"},
    "pipeline": {"web", "worker", "serve", "cli", "inbound"},
    "client": {"web", "pipeline", "worker", "store", "inbound"},
    "lookup": {"web", "pipeline", "worker", "store", "inbound"},
}


def imports(module: str) -> set[str]:
    """Modules imported by relay.<module> (all files of it when it is a package)."""
    path = RELAY / module
    files = sorted(path.glob("*.py")) if path.is_dir() else [RELAY / f"{module}.py"]
    names: set[str] = set()
    for node in (n for f in files for n in ast.walk(ast.parse(f.read_text()))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("module", PURE)
def test_pure_modules_import_no_edge_library(module: str) -> None:
    used = {name.split(".")[0] for name in imports(module)}
    assert not used & EDGE_LIBS, f"relay.{module} imports {used & EDGE_LIBS}"


@pytest.mark.parametrize(("module", "banned"), FORBIDDEN.items())
def test_data_flows_one_way(module: str, banned: set[str]) -> None:
    used = {name.split(".")[1] for name in imports(module) if name.startswith("relay.") and name.count(".") >= 1}
    assert not used & banned, f"relay.{module} imports {used & banned}"


MODULES = sorted(p.stem for p in RELAY.glob("*.py")) + ["store"]


def test_only_the_client_imports_requests_and_tenacity() -> None:
    users = [m for m in MODULES if {"requests", "tenacity"} & {n.split(".")[0] for n in imports(m)}]
    assert users == ["client"]


def test_only_the_store_speaks_sql() -> None:
    sql = {"sqlalchemy", "sqlite3", "alembic", "psycopg"}
    users = [m for m in MODULES if sql & {n.split(".")[0] for n in imports(m)}]
    assert users == ["store"]
    assert "INSERT INTO jobs" in (RELAY / "store" / "sqlite.py").read_text()
