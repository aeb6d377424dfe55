"""docs/deploy.md stays true to what it documents: the nginx config the deployment test
runs, and every environment variable the settings read."""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DEPLOY_DOC = REPO_ROOT / "docs" / "deploy.md"
SETTINGS = REPO_ROOT / "chatsite" / "settings.py"
# What settings.py reads the environment with; each takes the variable's name first.
ENV_READERS = {"env_str", "env_bool", "env_int", "env_list", "getenv", "get"}


def variables_read_by_settings() -> set[str]:
    """Names of the environment variables settings.py reads, from its syntax tree. A read
    whose name is not a literal fails here: the table could not be checked."""
    names: set[str] = set()
    # The env_* functions' own bodies read `name`: what matters is what they are called with.
    statements = [
        statement
        for statement in ast.parse(SETTINGS.read_text()).body
        if not (isinstance(statement, ast.FunctionDef) and statement.name in ENV_READERS)
    ]
    for node in (node for statement in statements for node in ast.walk(statement)):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
            from_environ = isinstance(func, ast.Attribute) and ast.unparse(func.value) in ("os.environ", "os")
            if name in ENV_READERS and (isinstance(func, ast.Name) or from_environ) and node.args:
                first = node.args[0]
                assert isinstance(first, ast.Constant), (
                    f"settings.py reads a variable by a computed name: {ast.unparse(node)}"
                )
                names.add(first.value)
        elif isinstance(node, ast.Subscript) and ast.unparse(node.value) == "os.environ":
            assert isinstance(node.slice, ast.Constant), f"settings.py reads {ast.unparse(node)}"
            names.add(node.slice.value)
    return names


def variables_in_the_doc_table() -> set[str]:
    section = DEPLOY_DOC.read_text().split("## Settings", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return {name for row in rows for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", row.split("|")[1])}


def test_the_settings_table_lists_every_variable_settings_py_reads():
    read = variables_read_by_settings()
    documented = variables_in_the_doc_table()

    assert {"DATABASE_URL", "REDIS_URL", "CHATSITE_LOG_JSON"} <= read
    assert not read - documented, (
        f"read by chatsite/settings.py, missing from docs/deploy.md: {sorted(read - documented)}"
    )
    assert not documented - read, f"in docs/deploy.md but not read by settings.py: {sorted(documented - read)}"


def test_the_doc_shows_deploy_nginx_conf_verbatim():
    conf = (REPO_ROOT / "deploy" / "nginx.conf").read_text().strip()

    assert conf in DEPLOY_DOC.read_text()


def test_the_doc_names_each_deploy_file():
    doc = DEPLOY_DOC.read_text()

    for path in sorted((REPO_ROOT / "deploy").iterdir()):
        assert f"`deploy/{path.name}`" in doc, path.name
