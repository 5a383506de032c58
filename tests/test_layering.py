"""The layering book/library.md promises: data, runs, splits and tables import without torch."""

import subprocess
import sys

import pytest


@pytest.mark.parametrize("module", ["field", "data", "splits", "runs", "metrics", "tables", "registry"])
def test_module_imports_without_the_training_stack(module):
    code = f"import sys, leanecd.{module}; print(sorted(m for m in ('torch', 'gpaw') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", f"leanecd.{module} imports {out.stdout.strip()}"
