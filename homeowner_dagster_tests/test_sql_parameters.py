"""Database access through parameters only: no SQL text built from strings, anywhere.

A static check over every module of `homeowner_dagster`: the query handed to `execute`,
`executemany`, `copy` or `read_frame` (and the text given to `psycopg.sql.SQL`) must not be an
f-string, a `%`/`+` expression or a `str.format()` call, directly or through a local variable.
Composition with `psycopg.sql.SQL(...).format(sql.Identifier(...), ...)` is the allowed way.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import homeowner_dagster

pytestmark = pytest.mark.usefixtures("collector_paused")  # see conftest

PACKAGE = Path(homeowner_dagster.__file__).parent
QUERY_METHODS = {"execute", "executemany", "copy", "read_frame"}


def _is_sql_composition(node: ast.AST) -> bool:
    """`sql.SQL("...")` / `SQL("...")`, possibly `.format(...)`-ed or `.join(...)`-ed."""
    if isinstance(node, ast.Call):
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        if name in {"SQL", "Composed", "Identifier", "Literal", "Placeholder"}:
            return True
        if isinstance(func, ast.Attribute) and func.attr in {"format", "join"}:
            return _is_sql_composition(func.value)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):  # Composed + Composed
        return _is_sql_composition(node.left) or _is_sql_composition(node.right)
    return False


def _all_constant(node: ast.AST) -> bool:
    if isinstance(node, ast.Constant):
        return True
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _all_constant(node.left) and _all_constant(node.right)
    return False


def _built_from_strings(node: ast.AST) -> str | None:
    """Why this expression is SQL text built at run time, or None."""
    if _is_sql_composition(node):
        return None
    if isinstance(node, ast.JoinedStr):
        return "f-string"
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod | ast.Add):
        if _all_constant(node):
            return None
        return "% formatting" if isinstance(node.op, ast.Mod) else "string concatenation"
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in {"format", "join", "replace"}
    ):
        return f"str.{node.func.attr}()"
    return None


def _assignments(scope: ast.AST) -> dict[str, list[ast.AST]]:
    found: dict[str, list[ast.AST]] = {}
    for node in ast.walk(scope):
        targets: list[ast.AST] = []
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        elif isinstance(node, ast.AugAssign):  # stmt += " where ..." builds text too
            targets, value = [node.target], ast.BinOp(node.target, node.op, node.value)
        for target in targets:
            if isinstance(target, ast.Name):
                found.setdefault(target.id, []).append(value)
    return found


def _query_argument(call: ast.Call) -> ast.AST | None:
    func = call.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    if name == "read_frame":  # read_frame(conn, query, params)
        return call.args[1] if len(call.args) > 1 else None
    if name in QUERY_METHODS and isinstance(func, ast.Attribute):
        return call.args[0] if call.args else None
    if name == "SQL":  # the text given to sql.SQL must itself be constant
        return call.args[0] if call.args else None
    return None


def violations_in(source: str, filename: str) -> list[str]:
    tree = ast.parse(source, filename)
    problems: list[str] = []
    scopes = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
    module_assignments = _assignments(tree)
    for scope in [tree, *scopes]:
        local = _assignments(scope) if scope is not tree else module_assignments
        body_nodes = ast.walk(scope)
        for node in body_nodes:
            if not isinstance(node, ast.Call):
                continue
            query = _query_argument(node)
            if query is None:
                continue
            candidates = [query]
            if isinstance(query, ast.Name):
                candidates = local.get(query.id, []) or module_assignments.get(query.id, [])
            for candidate in candidates:
                why = _built_from_strings(candidate)
                if why:
                    problems.append(f"{filename}:{node.lineno}: SQL built with {why}")
    return sorted(set(problems))


def test_no_sql_built_from_strings() -> None:
    problems: list[str] = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE.parent).as_posix()
        problems += violations_in(path.read_text(encoding="utf-8"), relative)
    assert problems == [], "SQL must be composed with parameters:\n" + "\n".join(problems)


def test_the_check_catches_what_it_should() -> None:
    bad = """
def f(conn, slug, table):
    conn.execute(f"select * from clients where slug = '{slug}'")
    conn.execute("select * from clients where slug = '%s'" % slug)
    conn.execute("select * from " + table)
    conn.execute("select * from {}".format(table))
    stmt = f"delete from {table}"
    cur.executemany(stmt, [])
    read_frame(conn, "select * from " + table)
    conn.execute(sql.SQL(f"select * from {table}"))
"""
    lines = {int(p.split(":")[1]) for p in violations_in(bad, "bad.py")}
    assert lines == {3, 4, 5, 6, 8, 9, 10}
    good = """
def g(conn, slug, table):
    conn.execute("select * from clients where slug = %s", [slug])
    conn.execute("select * " "from clients")
    conn.execute("select * " + "from clients")
    conn.execute(sql.SQL("select * from {}").format(sql.Identifier(table)))
    stmt = sql.SQL("delete from {} where ").format(sql.Identifier(table)) + clause
    conn.execute(stmt, [slug])
    read_frame(conn, "select 1")
"""
    assert violations_in(good, "good.py") == []
