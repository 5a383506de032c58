"""The registry: one home for model, target and source names; one entry is enough to add one."""

import ast
import json
from pathlib import Path

import numpy as np
import pandas as pd
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


# ---------------------------------------------------------------- one entry is enough

REPO = Path(__file__).resolve().parents[1]


def _write_tiny_run(run_dir, model, target, n=20, seed=0):
    """A finished run directory of ``model`` on ``target``, written with :mod:`leanecd.runs` alone."""
    from leanecd import metrics, runs, splits

    rng = np.random.default_rng(seed)
    ids = [f"c{i}" for i in range(n)]
    y = rng.uniform(50, 150, n)
    pred = y + rng.normal(0, 5, n)
    trainval, test = splits.split_indices(n, seed)
    rows = [(ids[i], split, None, target, y[i], pred[i]) for split, idx in (("train", trainval), ("test", test))
            for i in idx]
    run_dir.mkdir(parents=True)
    runs.write_config(run_dir, {"config": {"model": model, "targets": [target], "epochs": 3, "folds": 0,
                                           "mode": "quick", "seed": seed},
                                "provenance": {"device": "cpu", "dataset_version": "synthetic"}})
    runs.write_splits(run_dir, runs.splits_record(ids, np.arange(n), trainval, test, []))
    runs.write_predictions(run_dir / "predictions.csv", rows)
    rec = metrics.recompute(pd.DataFrame(rows, columns=runs.PREDICTION_COLUMNS))
    runs.write_metrics(run_dir, {**rec, "model": model, "targets": [target]})
    return run_dir


def _literal_model_lists(source: str) -> list[str]:
    """Literal collections of two or more registered model names, and strings like "ABC", in ``source``."""
    code = "\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("!", "%")))
    names = set(registry.MODELS)
    found = []
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Tuple | ast.List | ast.Set):
            consts = [e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]
            if sum(c in names for c in consts) >= 2:
                found.append(ast.unparse(node))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and len(node.value) >= 2 \
                and all(ch in names for ch in node.value):
            found.append(repr(node.value))
    return found


def test_literal_model_list_detector_sees_what_it_should():
    assert _literal_model_lists('for m in ("A", "B", "C"): pass') == ["('A', 'B', 'C')"]
    assert _literal_model_lists('x = [m for m in "ABC"]') == ["'ABC'"]
    assert _literal_model_lists('t = table(models=[r.model, "zhao"])') == []


def test_chapter_7_takes_its_models_from_the_registry():
    nb = json.loads((REPO / "notebooks" / "07-results.ipynb").read_text())
    code = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
    assert [hit for src in code for hit in _literal_model_lists(src)] == []
    assert any("registry.model_names(" in src for src in code)


def test_one_registry_entry_adds_a_lean_model(monkeypatch, tmp_path, capsys):
    from leanecd import models, resultplots, runs, tables, train

    monkeypatch.setitem(registry.MODELS, "D", registry.Model("D", "Model D", "lean", "tab:olive"))
    monkeypatch.setitem(models.LEAN_SPECS, "D", [(5, 8, 2), (3, 4, 1), (1, 1, 1)])

    # the training CLI accepts it (argparse would stop at "invalid choice: 'D'" otherwise)
    with pytest.raises(SystemExit):
        train.main(["--model", "D", "--target", "bulk_modulus_GPa", "--run-dir", str(tmp_path / "cli")])
    err = capsys.readouterr().err
    assert "invalid choice" not in err and "give --dataset" in err

    net = models.build_model("D")
    assert models.count_parameters(net) > 0

    _write_tiny_run(tmp_path / "results" / "D-run", "D", "bulk_modulus_GPa")
    found = runs.find_runs(tmp_path / "results")
    assert [r.model for r in found] == ["D"]
    t2 = tables.table2(found, paper=False)
    assert "Model D" in t2.columns.get_level_values("model")
    # with a baseline run beside it, D sits among the lean models, before the baselines
    _write_tiny_run(tmp_path / "results" / "mean-run", "mean", "bulk_modulus_GPa")
    order = tables.table2(runs.find_runs(tmp_path / "results"), paper=False).columns.get_level_values("model")
    assert list(dict.fromkeys(order)) == ["Model A", "Model B", "Model C", "Model D", "training mean"]
    mae = t2[("Model D", "bulk modulus (GPa)", "ours")]["Test-MAE"]
    assert mae == pytest.approx(runs.check_run(found[0])["test_mae"]["bulk_modulus_GPa"][1])
    assert tables.table3(found, literature=False).index.tolist() == ["Model D (ours)"]
    assert resultplots.model_color("D") == "tab:olive"
    assert registry.model_label("D") == "Model D"


def test_one_registry_entry_adds_a_target(monkeypatch, tmp_path):
    from leanecd import runs, tables

    monkeypatch.setitem(registry.TARGETS, "X", registry.Target("X", "property x", "arb. unit", ("x_old",)))
    assert registry.canonical_target("x_old") == "X"
    assert registry.target_label("x_old") == "property x (arb. unit)"
    assert registry.target_unit("X") == "arb. unit"

    # a run that spells the target by its alias reads back with the canonical name
    run = runs.read_run(_write_tiny_run(tmp_path / "A-x", "A", "x_old"))
    assert run.targets == ["X"] and set(run.predictions["target"]) == {"X"}
    assert set(run.metrics["test_mae"]) == {"X"}
    t2 = tables.table2([run], paper=False)
    col = ("Model A", "property x (arb. unit)", "ours")
    assert col in t2.columns and t2[col]["units"] == "arb. unit"
    assert t2[col]["Test-MAE"] == pytest.approx(runs.check_run(run)["test_mae"]["X"][1])
