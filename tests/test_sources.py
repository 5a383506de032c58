"""Dataset sources come from the registry: ``load_dataset`` dispatches a registered name
to its loader with the options the source declares."""

from __future__ import annotations

import pytest

from leanecd import registry
from leanecd.data import load_dataset
from leanecd.errors import FileFormatError


def test_a_new_source_is_one_file_and_one_registry_entry(tmp_path, monkeypatch):
    (tmp_path / "my_source.py").write_text("def load(root, labels=None):\n    return ('mine', root, labels)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(registry.SOURCES, "mine", registry.Source("mine", "my_source:load", "a test source",
                                                                  ("labels",)))
    # only the declared options reach the loader; one left at None takes the loader's default
    assert load_dataset("mine", "here", labels="l.csv", jarvis_json="x.json") == ("mine", "here", "l.csv")
    assert load_dataset("mine") == ("mine", None, None)
    with pytest.raises(FileFormatError, match="one of 'embedded', 'chgcar-dir', 'jarvis', 'mine', or a directory"):
        load_dataset(tmp_path / "absent")


def test_the_chgcar_dir_source_by_name_needs_its_directory():
    with pytest.raises(ValueError, match="'chgcar-dir' source needs root="):
        load_dataset("chgcar-dir")
