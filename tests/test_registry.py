"""The registry: one home for model, target and source names."""

import pytest

from leanecd import registry
from leanecd.errors import LeanECDError


def test_every_alias_resolves_to_its_target_and_unknown_names_fail():
    for t in registry.TARGETS.values():
        for spelling in (t.name, *t.aliases):
            assert registry.target(spelling) is t
    assert registry.canonical_target("bulk_modulus") == "bulk_modulus_GPa"
    assert registry.target("total_energy").label == "total energy (eV/atom)"
    with pytest.raises(LeanECDError, match="unknown target 'bulk'"):
        registry.target("bulk")


def test_no_alias_names_two_targets():
    spellings = [s for t in registry.TARGETS.values() for s in (t.name, *t.aliases)]
    assert len(spellings) == len(set(spellings))


def test_models_in_table_order_with_kinds():
    assert registry.model_names("lean") == ("A", "B", "C")
    assert registry.model_names("network") == ("A", "B", "C", "zhao", "mirzaee")
    assert registry.model("C").printed_parameters == 80_834
    with pytest.raises(LeanECDError, match="unknown model 'D'"):
        registry.model("D")
    assert len({m.color for m in registry.MODELS.values()}) == len(registry.MODELS)


def test_sources_name_importable_loaders():
    import importlib
    for s in registry.SOURCES.values():
        module, func = s.loader.split(":")
        assert callable(getattr(importlib.import_module(module), func)), s.name
