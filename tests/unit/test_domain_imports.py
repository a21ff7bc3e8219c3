"""The domain depends on no adapter: nothing in returnguard/ outside returnguard/aws/ imports
returnguard.aws or boto3 (adapters implement the protocols of returnguard.ports instead)."""

from __future__ import annotations

import ast
from pathlib import Path

DOMAIN = Path(__file__).resolve().parents[2] / "returnguard"
FORBIDDEN = ("returnguard.aws", "boto3")
# The `returnguard` command line wires adapters to commands (`models` needs the registry's); it is no
# domain logic, and nothing in the domain imports it.
COMPOSITION_ROOT = "cli.py"


def _imported(tree: ast.AST) -> list[tuple[int, str]]:
    names = []
    for node in ast.walk(tree):  # also imports inside functions: a lazy import is still a dependency
        if isinstance(node, ast.Import):
            names += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names += [(node.lineno, node.module)]
            names += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level > 0:
            names += [(node.lineno, "returnguard." + (node.module or ""))]
    return names


def forbidden_imports(root: Path) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        if "aws" in path.relative_to(root).parts[:1]:
            continue
        if path.relative_to(root).as_posix() == COMPOSITION_ROOT:
            continue
        for line, name in _imported(ast.parse(path.read_text(), str(path))):
            if any(name == f or name.startswith(f + ".") for f in FORBIDDEN):
                found.append(f"{path.relative_to(root.parent)}:{line} imports {name}")
    return sorted(set(found))


def test_domain_imports_no_adapter_and_no_boto3() -> None:
    assert forbidden_imports(DOMAIN) == []


def test_the_check_sees_an_adapter_import(tmp_path) -> None:
    package = tmp_path / "returnguard"
    (package / "aws").mkdir(parents=True)
    (package / "aws" / "store.py").write_text("import boto3\n")  # adapters may
    (package / "scoring.py").write_text("from returnguard.aws.feature_store import FeatureStore\n")
    (package / "narrative.py").write_text("def f():\n    import boto3.session\n")
    assert forbidden_imports(package) == [
        "returnguard/narrative.py:2 imports boto3.session",
        "returnguard/scoring.py:1 imports returnguard.aws.feature_store",
        "returnguard/scoring.py:1 imports returnguard.aws.feature_store.FeatureStore",
    ]


def test_nothing_in_the_domain_imports_the_command_line() -> None:
    importers = []
    for path in sorted(DOMAIN.rglob("*.py")):
        if "aws" in path.relative_to(DOMAIN).parts[:1]:
            continue  # the adapters' entry point (returnguard/aws/cli.py) wraps the command line
        names = [name for _, name in _imported(ast.parse(path.read_text(), str(path)))]
        if any(name == "returnguard.cli" or name.startswith("returnguard.cli.") for name in names):
            importers.append(str(path.relative_to(DOMAIN.parent)))
    assert importers == []
