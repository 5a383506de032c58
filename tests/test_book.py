"""The book build must fail when a notebook cell fails (jupyter-book build -W --keep-going)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _jb() -> str:
    exe = Path(sys.executable).parent / "jupyter-book"
    if not exe.exists():
        pytest.skip("jupyter-book is installed by scripts/setup-env.sh (the book extra)")
    return str(exe)


def _tiny_book(tmp_path: Path, source: str) -> Path:
    shutil.copy(ROOT / "_config.yml", tmp_path / "_config.yml")
    (tmp_path / "book").mkdir()
    shutil.copy(ROOT / "book" / "references.bib", tmp_path / "book" / "references.bib")
    shutil.copytree(ROOT / "book" / "_ext", tmp_path / "book" / "_ext")  # local_extensions of _config.yml
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: page\nchapters:\n  - file: nb\n")
    (tmp_path / "page.md").write_text("# A page\n")
    nb = nbformat.v4.new_notebook()
    nb.metadata = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
    nb.cells = [nbformat.v4.new_markdown_cell("# NB"), nbformat.v4.new_code_cell(source)]
    nbformat.write(nb, tmp_path / "nb.ipynb")
    return tmp_path


@pytest.mark.parametrize("source, ok", [("print(1 + 1)", True), ("raise RuntimeError('deliberate failure')", False)])
def test_book_build_fails_on_a_failing_cell(tmp_path, source, ok):
    book = _tiny_book(tmp_path, source)
    proc = subprocess.run([_jb(), "build", str(book), "--builder", "html", "-W", "--keep-going"],
                          capture_output=True, text=True, timeout=600)
    assert (proc.returncode == 0) == ok, proc.stdout[-2000:] + proc.stderr[-2000:]
    if ok:
        assert (book / "_build" / "html" / "nb.html").exists()
