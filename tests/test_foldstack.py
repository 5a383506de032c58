"""Fold-parallel (stacked) training gives the runs the sequential path gives.

SYNTHETIC data (random fields on a 19³ grid, as in test_train.py), Model A, 3 folds +
final fit, 3 epochs, batch 10, on the CPU: the folds train on 24/25/25 samples (3
batches, the last of 4 or 5), the final fit on 37 (4 batches, the last of 7), so the
runs have different numbers and sizes of batches every epoch.

The proof comes in two parts:

* float64 (the features and weights in double precision; the targets and the loss stay
  float32 as in the library): the stacked path reproduces the sequential one BIT FOR
  BIT — weights, Adam and scheduler states, random states, learning rates, best epochs,
  predictions — with input standardisation, warm-up and dropout too. On a CPU a
  float64 grouped convolution is computed group by group, so this isolates the
  bookkeeping (subsets, data order, z-scores, input statistics, padding and masked
  steps, per-run schedules, checkpoints, resume) from the arithmetic and checks it
  exactly. Only the logged epoch losses differ, by ~1e-7 (the float32 loss is summed
  in another order).
* float32 (the library's precision; oneDNN's grouped convolution): a grouped
  convolution sums in another order than K separate ones, so the gradients agree to
  ~1e-6 of each tensor's scale, but a gradient element near zero can differ by tens of
  per cent of itself, and Adam moves every weight by about lr · g / (|g| + eps) however
  small |g| is: a few weights differ by a fraction of one Adam step after the first
  update, and training carries that on. After 3 epochs, measured on this project's CPU
  (AVX-512) over six synthetic data sets: relative Frobenius difference of a weight
  tensor up to 8.7e-4 (5.7e-5 for the data used here), largest element difference up
  to 1.1e-2 of the tensor's largest element, epoch losses up to 1.1e-3 relative (with
  oneDNN limited to AVX2, three data sets: 2e-5, 5e-4, 6e-5). The float32 tolerances
  below are about 3x the worst of those; an element-wise rtol of 1e-5 on the weights
  held for none of them.

A changed sample in one run's data order (one swap in the first epoch) or subset moves
that run's weights by 0.4-0.6 (relative Frobenius) and leaves the other runs bit for bit
as they were, in float64 and in float32 (tests below): no run's data leaks into another.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from test_train import GRID, synthetic

from leanecd import foldstack, train
from leanecd.checkpoint import load_checkpoint_model, read_history
from leanecd.models import Standardized, build_model
from leanecd.splits import split_indices
from leanecd.train import fit, main
from leanecd.trainconfig import TrainConfig

RUNS = ("fold-1", "fold-2", "fold-3", "final")

# float32, grouped engine vs sequential (see the module docstring for why these and not 1e-5):
#: relative Frobenius difference per weight tensor
TOL_FRO = 3e-3
#: largest element difference / largest element, per weight tensor
TOL_MAX = 3e-2
#: relative difference of the epoch losses (train and validation)
TOL_LOSS = 3e-3
#: float64: relative difference of the logged epoch losses (summed in float32 in another order)
TOL_LOSS_64 = 1e-6

CASES = {
    "plain": {},
    "voxel+warmup+dropout": {"input_norm": "voxel", "warmup_epochs": 1.5, "dropout": 0.1},
}


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def config(stacked: bool, **kw) -> TrainConfig:
    return TrainConfig(model="A", targets=("synthetic",), epochs=3, folds=3, batch_size=10, mode="full",
                       stacked=stacked, **kw)


@pytest.fixture(params=["float32", "float64"])
def precision(request, monkeypatch):
    """Run the library in float32 (as it is) or in float64 (features and weights; see the docstring)."""
    if request.param == "float32":
        yield request.param
        return

    class Features64(train.Features):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.t = self.t.double()

    monkeypatch.setattr(train, "Features", Features64)
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # the models' weights
    try:
        yield request.param
    finally:
        torch.set_default_dtype(before)


@pytest.fixture(scope="module")
def data():
    return synthetic(n=41)  # 4 test, 37 train+CV: folds of 24, 25, 25 training samples


def _ckpt(run_dir, sub, name="last.pt"):
    return torch.load(run_dir / sub / name, weights_only=True)


def weight_differences(a, b, sub) -> tuple[float, float]:
    """(largest relative Frobenius difference, largest element difference / largest element) over the tensors."""
    sa, sb = _ckpt(a, sub)["model_state"], _ckpt(b, sub)["model_state"]
    fro = mx = 0.0
    for k in sa:
        x, y = sa[k].double(), sb[k].double()
        fro = max(fro, float((x - y).norm() / x.norm()))
        mx = max(mx, float((x - y).abs().max() / x.abs().max()))
    return fro, mx


def same_weights(a, b, sub) -> bool:
    sa, sb = _ckpt(a, sub)["model_state"], _ckpt(b, sub)["model_state"]
    return all(torch.equal(sa[k], sb[k]) for k in sa)


def _equal(x, y) -> bool:
    """Nested equality of checkpoint contents (tensors bit for bit)."""
    if isinstance(x, torch.Tensor):
        return isinstance(y, torch.Tensor) and x.dtype == y.dtype and torch.equal(x, y)
    if isinstance(x, dict):
        return isinstance(y, dict) and x.keys() == y.keys() and all(_equal(x[k], y[k]) for k in x)
    if isinstance(x, list | tuple):
        return isinstance(y, list | tuple) and len(x) == len(y) and all(_equal(u, v) for u, v in zip(x, y))
    return x == y


def _without_times(ckpt: dict) -> dict:
    out = dict(ckpt)
    out.pop("elapsed_s")
    out["history"] = [{k: v for k, v in row.items() if k != "time_s"} for row in ckpt["history"]]
    return out


# --------------------------------------------------------------------------- the stacked forward


@pytest.mark.parametrize("norm", ["none", "global", "voxel"])
def test_grouped_forward_is_each_model_on_its_own_channel(norm):
    torch.manual_seed(0)
    models = []
    for k in range(3):
        net = build_model("A", in_size=GRID)
        if norm == "global":
            net = Standardized(net, torch.tensor(0.5 + k), torch.tensor(1.0 + k), "global")
        elif norm == "voxel":
            net = Standardized(net, torch.rand(1, 1, GRID, GRID, GRID), 1 + torch.rand(1, 1, GRID, GRID, GRID), "voxel")
        models.append(net)
    x = torch.rand(5, 3, GRID, GRID, GRID) * 3
    with torch.no_grad():
        stacked = foldstack.grouped_forward(models, x)
        each = torch.stack([m(x[:, k:k + 1]) for k, m in enumerate(models)], dim=1)
    assert stacked.shape == (5, 3, 1)
    torch.testing.assert_close(stacked, each, rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------- equivalence


@pytest.mark.parametrize("case", list(CASES))
def test_loop_engine_reproduces_the_sequential_path_bit_for_bit(tmp_path, data, monkeypatch, case):
    X, y = data
    seq = fit(X, y, config(False, **CASES[case]), tmp_path / "seq", progress=False)
    monkeypatch.setattr(foldstack, "DEFAULT_ENGINE", "loop")
    st = fit(X, y, config(True, **CASES[case]), tmp_path / "loop", progress=False)
    for sub in RUNS:
        for name in ("last.pt", "best.pt"):
            a, b = _ckpt(tmp_path / "seq", sub, name), _ckpt(tmp_path / "loop", sub, name)
            assert _equal(_without_times(a), _without_times(b)), (sub, name)
    assert (tmp_path / "seq" / "predictions.csv").read_text() == (tmp_path / "loop" / "predictions.csv").read_text()
    for key in ("cv_mae", "cv_mae_per_fold", "train_mae", "test_mae", "epochs_run"):
        assert seq.metrics[key] == st.metrics[key], key
    assert json.loads((tmp_path / "loop" / "config.json").read_text())["config"]["stacked"] is True
    assert json.loads((tmp_path / "seq" / "config.json").read_text())["config"]["stacked"] is False


@pytest.mark.parametrize("case", list(CASES))
def test_stacked_training_matches_the_sequential_runs(tmp_path, data, case, precision):
    X, y = data
    seq = fit(X, y, config(False, **CASES[case]), tmp_path / "seq", progress=False)
    st = fit(X, y, config(True, **CASES[case]), tmp_path / "stacked", progress=False)
    exact = precision == "float64"
    for sub in RUNS:
        a, b = _ckpt(tmp_path / "seq", sub), _ckpt(tmp_path / "stacked", sub)
        if exact:  # everything but the logged losses and times, bit for bit
            for name in ("last.pt", "best.pt"):
                ca = _without_times(_ckpt(tmp_path / "seq", sub, name))
                cb = _without_times(_ckpt(tmp_path / "stacked", sub, name))
                for c in (ca, cb):
                    c["history"] = [{k: v for k, v in row.items() if not k.endswith("_loss")} for row in c["history"]]
                    c.pop("best_val_loss")
                assert _equal(ca, cb), (sub, name)
        else:
            fro, mx = weight_differences(tmp_path / "seq", tmp_path / "stacked", sub)
            assert fro <= TOL_FRO and mx <= TOL_MAX, (sub, fro, mx)
            for key in ("train_idx", "target_mean", "target_std", "model_kwargs", "epoch", "run_seed"):
                assert _equal(a[key], b[key]), (sub, key)
            assert a["optimizer_state"]["state"][0]["step"] == b["optimizer_state"]["state"][0]["step"]
            assert a["scheduler_state"]["last_epoch"] == b["scheduler_state"]["last_epoch"]
        ha, hb = read_history(tmp_path / "seq" / sub), read_history(tmp_path / "stacked" / sub)
        assert [h["epoch"] for h in ha] == [h["epoch"] for h in hb] == [1, 2, 3]
        assert [h["lr"] for h in ha] == [h["lr"] for h in hb]  # the same schedule, exactly
        for key in ("train_loss", "val_loss"):
            va, vb = [h[key] for h in ha], [h[key] for h in hb]
            if sub == "final" and key == "val_loss":
                assert va == vb == [None] * 3
            else:
                np.testing.assert_allclose(vb, va, rtol=TOL_LOSS_64 if exact else TOL_LOSS, err_msg=f"{sub} {key}")
    for key in ("cv_mae", "train_mae", "test_mae"):
        np.testing.assert_allclose(st.metrics[key]["synthetic"], seq.metrics[key]["synthetic"],
                                   rtol=0 if exact else 1e-2)
    if exact:
        assert ((tmp_path / "seq" / "predictions.csv").read_text()
                == (tmp_path / "stacked" / "predictions.csv").read_text())
        return
    # the stacked checkpoints load like any other and reproduce the stored predictions
    model, mean, std = load_checkpoint_model(tmp_path / "stacked" / "final" / "last.pt")
    if CASES[case].get("input_norm"):
        assert isinstance(model, Standardized)
    _, test = split_indices(41, 0)
    with torch.no_grad():
        out = model(torch.from_numpy(X[test]).unsqueeze(1)).numpy()[:, 0] * std[0] + mean[0]
    rows = (tmp_path / "stacked" / "predictions.csv").read_text().splitlines()[1:]
    stored = [float(r.split(",")[-1]) for r in rows if r.split(",")[1] == "test"]
    np.testing.assert_allclose(out, stored, rtol=1e-5)


@pytest.mark.parametrize("leak", ["permutation", "subset"])
def test_one_runs_data_changed_is_caught_and_stays_in_that_run(tmp_path, data, monkeypatch, leak, precision):
    """The comparison has teeth: one sample moved in fold 2 (its data order in one epoch,
    or its training subset) moves fold 2's weights far beyond the tolerances (in float64,
    where they otherwise agree bit for bit, and in float32), and leaves the other three
    runs of the stacked model bit for bit as they were."""
    X, y = data
    cfg = config(True)
    fit(X, y, config(False), tmp_path / "seq", progress=False)
    fit(X, y, cfg, tmp_path / "stacked", progress=False)
    fold2_seed = cfg.seed + 2
    if leak == "permutation":
        original = foldstack.epoch_permutation

        def mutated(train_idx, run_seed, epoch):
            perm = original(train_idx, run_seed, epoch)
            if run_seed == fold2_seed and epoch == 0:  # fold 2, first epoch: first and last sample swap batches
                perm = perm.clone()
                perm[[0, -1]] = perm[[-1, 0]]
            return perm

        monkeypatch.setattr(foldstack, "epoch_permutation", mutated)
    else:
        original = train.kfold_indices

        def mutated(*args, **kwargs):
            folds = original(*args, **kwargs)
            tr, va = folds[1]
            folds[1] = (np.sort(np.concatenate([tr[1:], va[:1]])), va)  # one training sample swapped for another
            return folds

        monkeypatch.setattr(train, "kfold_indices", mutated)
    fit(X, y, cfg, tmp_path / "leak", progress=False)
    fro, _ = weight_differences(tmp_path / "seq", tmp_path / "leak", "fold-2")
    assert fro > 3 * TOL_FRO, fro
    for sub in ("fold-1", "fold-3", "final"):
        assert same_weights(tmp_path / "stacked", tmp_path / "leak", sub), sub
        if precision == "float64":
            assert same_weights(tmp_path / "seq", tmp_path / "leak", sub), sub


# --------------------------------------------------------------------------- resume


class _Interrupt(Exception):
    pass


def test_stacked_resume_after_interrupt_gives_identical_weights(tmp_path, data):
    X, y = data
    cfg = config(True, dropout=0.1)
    fit(X, y, cfg, tmp_path / "straight", progress=False)

    def crash(label, epoch, row):
        if label.startswith("fold 2") and epoch == 2:
            raise _Interrupt

    with pytest.raises(_Interrupt):
        fit(X, y, cfg, tmp_path / "resumed", progress=False, on_epoch_end=crash)
    for sub in RUNS:  # every run checkpointed epoch 2 before the callbacks ran
        assert _ckpt(tmp_path / "resumed", sub)["epoch"] == 2
    assert not (tmp_path / "resumed" / "metrics.json").exists()
    seen = []
    fit(X, y, cfg, tmp_path / "resumed", progress=False, on_epoch_end=lambda lab, ep, row: seen.append((lab, ep)))
    assert seen == [(lab, 3) for lab in ("fold 1/3", "fold 2/3", "fold 3/3", "final (90 %)")]
    for sub in RUNS:
        assert _equal(_without_times(_ckpt(tmp_path / "straight", sub)),
                      _without_times(_ckpt(tmp_path / "resumed", sub)))
    assert ((tmp_path / "straight" / "predictions.csv").read_text()
            == (tmp_path / "resumed" / "predictions.csv").read_text())


@pytest.mark.parametrize("engine", foldstack.ENGINES)
def test_a_sequential_run_interrupted_resumes_stacked(tmp_path, data, monkeypatch, engine, precision):
    """Runs at different epochs (fold 1 done, fold 2 at epoch 2, fold 3 and final not started) resume together."""
    X, y = data
    fit(X, y, config(False, dropout=0.1), tmp_path / "straight", progress=False)

    def crash(label, epoch, row):
        if label.startswith("fold 2") and epoch == 2:
            raise _Interrupt

    with pytest.raises(_Interrupt):
        fit(X, y, config(False, dropout=0.1), tmp_path / "resumed", progress=False, on_epoch_end=crash)
    monkeypatch.setattr(foldstack, "DEFAULT_ENGINE", engine)
    seen = []
    fit(X, y, config(True, dropout=0.1), tmp_path / "resumed", progress=False,
        on_epoch_end=lambda lab, ep, row: seen.append((lab, ep)))
    assert seen[:3] == [("fold 3/3", 1), ("final (90 %)", 1), ("fold 3/3", 2)]
    assert ("fold 2/3", 3) in seen and not any(lab.startswith("fold 1") for lab, _ in seen)
    assert same_weights(tmp_path / "straight", tmp_path / "resumed", "fold-1")  # finished: not retrained
    for sub in RUNS[1:]:
        if engine == "loop" or precision == "float64":  # bit for bit, the random streams included
            a, b = _ckpt(tmp_path / "straight", sub), _ckpt(tmp_path / "resumed", sub)
            assert _equal(a["model_state"], b["model_state"]) and _equal(a["rng"], b["rng"]), sub
            assert _equal(a["optimizer_state"], b["optimizer_state"]), sub
        else:
            fro, mx = weight_differences(tmp_path / "straight", tmp_path / "resumed", sub)
            assert fro <= TOL_FRO and mx <= TOL_MAX, (sub, fro, mx)


# --------------------------------------------------------------------------- configuration


def test_stacked_is_off_on_a_cpu_by_default_and_only_for_lean_models(capsys):
    cpu = torch.device("cpu")
    assert foldstack.resolve_stacked(None, "A", cpu) is False
    assert foldstack.resolve_stacked(True, "B", cpu) is True
    assert foldstack.resolve_stacked(True, "zhao", cpu) is False
    assert "not a lean CNN" in capsys.readouterr().out
    assert foldstack.resolve_stacked(None, "mirzaee", torch.device("cuda")) is False
    assert foldstack.resolve_stacked(None, "C", torch.device("cuda")) is True
    assert [m for m in ("A", "B", "C", "zhao", "mirzaee") if foldstack.supports(m)] == ["A", "B", "C"]
    with pytest.raises(Exception, match="engine"):
        foldstack.train_stacked(np.zeros((4, GRID, GRID, GRID), np.float32), np.zeros(4), [], TrainConfig(), engine="x")


def test_command_line_stacked(tmp_path):
    from test_train import write_synthetic_cli_inputs

    write_synthetic_cli_inputs(tmp_path)
    common = ["--model", "A", "--target", "bulk_modulus", "--features", str(tmp_path / "features.npy"),
              "--labels", str(tmp_path / "labels.csv"), "--epochs", "1", "--folds", "2", "--batch-size", "8",
              "--mode", "full", "--no-progress"]
    assert main([*common, "--run-dir", str(tmp_path / "on"), "--stacked"]) == 0
    assert main([*common, "--run-dir", str(tmp_path / "off"), "--no-stacked"]) == 0
    assert json.loads((tmp_path / "on" / "config.json").read_text())["config"]["stacked"] is True
    assert json.loads((tmp_path / "off" / "config.json").read_text())["config"]["stacked"] is False
    for sub in ("fold-1", "fold-2", "final"):
        assert len(read_history(tmp_path / "on" / sub)) == 1
