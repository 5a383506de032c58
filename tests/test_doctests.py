"""The examples in the library's docstrings (``>>>``) are run as tests, so they stay true."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import leanecd

#: every module, those of subpackages too (not a ``__main__``, which runs a command when imported)
MODULES = sorted(m.name for m in pkgutil.walk_packages(leanecd.__path__, "leanecd.")
                 if not m.name.endswith(".__main__"))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, report=False)
    assert result.failed == 0, f"{name}: {result.failed} of {result.attempted} docstring examples failed"


def test_the_library_has_docstring_examples():
    """At least the 2-point-statistics and feature modules show their API by example."""
    finder = doctest.DocTestFinder()
    counts = {name: sum(len(t.examples) for t in finder.find(importlib.import_module(name))) for name in MODULES}
    assert counts["leanecd.correlations"] > 0 and counts["leanecd.features"] > 0 and counts["leanecd.dft.settings"] > 0
