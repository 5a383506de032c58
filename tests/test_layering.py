"""The layering book/library.md promises: data, runs, splits and tables import without torch."""

import re
import subprocess
import sys

import pytest


@pytest.mark.parametrize("module", ["field", "data", "splits", "runs", "metrics", "tables", "registry"])
def test_module_imports_without_the_training_stack(module):
    code = f"import sys, leanecd.{module}; print(sorted(m for m in ('torch', 'gpaw') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", f"leanecd.{module} imports {out.stdout.strip()}"


def test_a_module_over_500_lines_says_why():
    """One job per module: a module longer than ~500 lines states its length and the reason."""
    import ast
    from pathlib import Path

    lib = Path(__file__).resolve().parents[1] / "lib" / "leanecd"
    silent = []
    for path in sorted(lib.rglob("*.py")):
        text = path.read_text()
        if text.count("\n") > 500:
            doc = ast.get_docstring(ast.parse(text)) or ""
            if not re.search(r"\b(over|about) \d+ lines", doc, re.IGNORECASE):
                silent.append(f"{path.relative_to(lib)} ({text.count(chr(10))} lines)")
    assert not silent, f"long modules whose docstring does not say why: {silent}"
