"""Issue 16's rule: demos reach only tinydeep.experiments and the public API, never
the backends' kernels (checked on the source, so a new demo is covered too)."""
import ast
import pathlib

import pytest

DEMOS = sorted((pathlib.Path(__file__).parent.parent / "demos").glob("*.py"))


@pytest.mark.parametrize("path", DEMOS, ids=lambda p: p.name)
def test_demo_imports_no_backend(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    bad = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module + "." + a.name for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.Attribute) and node.attr == "backends":
            names = ["….backends"]
        else:
            continue
        bad += [n for n in names if "backends" in n.split(".") or n.startswith("tinydeep.tensor")
                or n.startswith("tinydeep.experiments.training._")]
    assert not bad, f"{path.name} reaches below the public API: {bad}"


def test_the_check_sees_a_backend_call():
    tree = ast.parse("import tinydeep as td\ntd.backends.get('cpu')\n")
    assert any(isinstance(n, ast.Attribute) and n.attr == "backends" for n in ast.walk(tree))
