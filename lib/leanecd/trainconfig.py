"""The training protocol as settings: the paper's (``full``), quick mode's shortcuts, one run's config.

:data:`FULL_PROTOCOL` is the paper's protocol (§3.2, §4: 650 epochs, 9 folds, batch 50,
Adam at 5×10⁻³, cosine warm restarts with ``T_0 = 50`` epochs); :data:`QUICK_PROTOCOL`
what quick mode changes (every change is a printed shortcut line, so no reader mistakes a
demonstration for a result); :data:`OPEN_CHOICES` our choices where the paper is silent.
:class:`TrainConfig` holds one run's settings and :func:`resolve_config` fills them in;
:func:`check_same_run` refuses to resume a run directory with other settings.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from . import cpupath, registry
from .errors import LeanECDError
from .models import INPUT_NORMS
from .runs import read_config
from .settings import SETTINGS, run_mode
from .splits import TEST_FRACTION, check_train_fraction

__all__ = [
    "FULL_PROTOCOL",
    "OPEN_CHOICES",
    "QUICK_PROTOCOL",
    "TrainConfig",
    "check_same_run",
    "protocol",
    "protocol_label",
    "resolve_config",
]

#: The paper's protocol (full mode).
FULL_PROTOCOL = {
    "epochs": 650,
    "folds": 9,
    "max_samples": None,
    "batch_size": 50,
    "lr": 5e-3,
    "T_0": 50,
    "T_mult": 1,
}

#: What quick mode changes, and why it is printed.
QUICK_PROTOCOL = {
    "epochs": 3,
    "folds": 2,
    "max_samples": 40,
}


#: Settings the paper leaves open, and our choice for each (``TrainConfig`` fields that
#: default to ``None`` take these values; a run's ``config.json`` records them).
#: ``input_norm``: how the autocorrelations are scaled before the first convolution
#: (:data:`~leanecd.models.INPUT_NORMS`); ``warmup_epochs``: a linear learning-rate
#: warm-up from 0 over this many epochs, multiplying the cosine schedule.
OPEN_CHOICES = {
    "input_norm": "global",  # chapter 6: the paper's raw inputs at its learning rate under-fit our data
    "warmup_epochs": 0.0,
}


def protocol(mode: str | None = None) -> tuple[dict, list[str]]:
    """Training settings for ``mode`` (``"full"`` | ``"quick"``; default :func:`run_mode`).

    Returns ``(settings, shortcuts)``: the settings dict (keys of
    :data:`FULL_PROTOCOL`) and one human-readable line per deviation from the
    paper's protocol (empty in full mode).
    """
    mode = run_mode() if mode is None else mode
    if mode not in ("full", "quick"):
        raise LeanECDError(f"mode must be 'full' or 'quick', not {mode!r}")
    settings = dict(FULL_PROTOCOL)
    shortcuts: list[str] = []
    if mode == "quick":
        for key, value in QUICK_PROTOCOL.items():
            shortcuts.append(_shortcut_line(key, settings[key], value))
            settings[key] = value
        if settings["T_0"] > settings["epochs"]:
            shortcuts.append(_shortcut_line("T_0", settings["T_0"], settings["epochs"]))
            settings["T_0"] = settings["epochs"]
    return settings, shortcuts


def _shortcut_line(key: str, full, quick) -> str:
    full_s = "all samples" if full is None else full
    return f"quick mode: {key} {full_s} -> {quick} (the paper's protocol uses {full_s}; a demonstration, not a result)"


@dataclass
class TrainConfig:
    """Settings of one protocol run. ``None`` means "from :func:`protocol` for ``mode``".

    ``model``: a :func:`~leanecd.models.build_model` name; ``targets``: target names
    (one output each); ``epochs``, ``batch_size``, ``lr`` (Adam's initial learning
    rate); ``T_0`` (first cosine period, epochs), ``T_mult`` (period growth factor),
    ``eta_min`` (lowest learning rate); ``dropout`` (probability, Dropout3d after each
    PReLU); ``seed`` (splits, folds, initialisation, shuffling); ``folds`` (CV folds on
    the 90 %, 0 = none); ``test_fraction``; ``max_samples`` (a seeded random subset;
    quick mode uses 40, so pass a number or ``mode="full"`` to use more); ``device``
    (``"cuda"``/``"cpu"``, default CUDA when present); ``amp``, ``channels_last``
    (default: on for CUDA, off for CPU); ``compile`` (``torch.compile``);
    ``deterministic`` (default: on for CPU); ``cv_weights`` (``"last"`` or ``"best"``
    weights of each fold for CV-MAE); ``mode`` (``"full"``/``"quick"``, default
    :func:`~leanecd.settings.run_mode`); ``final_only`` (skip the cross-validation:
    ``folds`` becomes 0 and ``metrics.json`` labels the run "final fit only");
    ``train_fraction`` (0 < f ≤ 1: the fraction of the 90 % train+CV part used for
    training, for learning curves; the test set is unchanged, the same as the full
    run's with the same seed and data, so runs at different fractions are
    comparable; the subsets are nested (:func:`leanecd.splits.train_subset`), and the CV folds, if
    any, split the reduced set). Order of the selections: ``max_samples`` subset,
    then the test split, then ``train_fraction``. ``input_norm``, ``warmup_epochs``:
    what the paper leaves open (default :data:`OPEN_CHOICES`). ``cpu_path``: on a CPU,
    ``"auto"`` (probe the paths of :mod:`leanecd.cpupath` and keep the fastest; the
    default for long full-mode runs, see :data:`~leanecd.execution.AUTO_CPU_PATH_MIN_WORK`) or a path name
    (``"fp32"``, ``"bf16+cl+compile"``, ...); otherwise ``amp``/``channels_last``/
    ``compile`` decide (fp32 eager unless set). ``stacked``: train the CV folds and the
    final fit together as one stacked model (:mod:`leanecd.foldstack`; lean models only;
    default: on for CUDA, off for CPU).
    """

    model: str = "A"
    targets: tuple[str, ...] = ("bulk_modulus_GPa",)
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    T_0: int | None = None
    T_mult: int | None = None
    eta_min: float = 0.0
    dropout: float = 0.0
    seed: int = SETTINGS.seed
    folds: int | None = None
    test_fraction: float = TEST_FRACTION
    max_samples: int | None = None
    device: str | None = None
    amp: bool | None = None
    channels_last: bool | None = None
    compile: bool = False
    deterministic: bool | None = None
    cv_weights: str = "last"
    mode: str | None = None
    final_only: bool = False
    train_fraction: float = 1.0
    input_norm: str | None = None
    warmup_epochs: float | None = None
    cpu_path: str | None = None
    stacked: bool | None = None

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["targets"] = list(self.targets)
        return d


def resolve_config(config: TrainConfig) -> tuple[TrainConfig, list[str]]:
    """Fill every ``None`` protocol field from :func:`protocol` for ``config.mode``.

    Returns the resolved config and the quick-mode shortcuts actually taken (a value
    set explicitly in ``config`` is honoured and is not a shortcut).
    """
    mode = run_mode() if config.mode is None else config.mode
    settings, _ = protocol(mode)
    full, _ = protocol("full")
    shortcuts = []
    values = {}
    if config.final_only:
        if config.folds not in (None, 0):
            raise LeanECDError(f"final_only=True skips cross-validation, but folds={config.folds} was asked for")
        values["folds"] = 0
        shortcuts.append(f"final fit only: no {full['folds']}-fold cross-validation (the paper's protocol runs it "
                         "before the final fit), so there is no CV-MAE")
    fraction = check_train_fraction(config.train_fraction)
    if fraction < 1:
        shortcuts.append(f"train_fraction {fraction}: trains on a nested {fraction:.4g} share of the 90 % train+CV "
                         "part (a learning-curve point); the test set is the full run's")
    for key in FULL_PROTOCOL:
        explicit = getattr(config, key)
        if key in values:
            continue
        if explicit is not None:
            values[key] = explicit
        elif key == "T_0":  # one cosine period at most as long as the whole run
            values[key] = min(full["T_0"], values["epochs"])
            if values[key] != full["T_0"]:
                prefix = "quick mode: " if mode == "quick" and config.epochs is None else ""
                ep = "epoch" if values["epochs"] == 1 else "epochs"
                shortcuts.append(f"{prefix}T_0 {full['T_0']} -> {values[key]} {ep} "
                                 f"(the run is only {values['epochs']} {ep} long)")
        else:
            values[key] = settings[key]
            if settings[key] != full[key]:
                shortcuts.append(_shortcut_line(key, full[key], settings[key]))
    for key, value in OPEN_CHOICES.items():
        values[key] = value if getattr(config, key) is None else getattr(config, key)
    if values["input_norm"] not in INPUT_NORMS:
        raise LeanECDError(f"input_norm must be one of {INPUT_NORMS}, not {values['input_norm']!r}")
    if not values["warmup_epochs"] >= 0:
        raise LeanECDError(f"warmup_epochs must be >= 0, not {values['warmup_epochs']}")
    if config.cpu_path not in (None, "auto"):
        cpupath.get_path(config.cpu_path)  # raises on an unknown name
    targets = (config.targets,) if isinstance(config.targets, str) else tuple(config.targets)
    resolved = dataclasses.replace(config, mode=mode, targets=targets, train_fraction=fraction, **values)
    if resolved.cv_weights not in ("last", "best"):
        raise LeanECDError(f"cv_weights must be 'last' or 'best', not {resolved.cv_weights!r}")
    if resolved.epochs < 1 or resolved.batch_size < 1:
        raise LeanECDError("epochs and batch_size must be >= 1")
    return resolved, shortcuts


#: Settings that must match for :func:`~leanecd.train.fit` to resume a run directory.
_RESUME_KEYS = ("model", "targets", "batch_size", "lr", "T_0", "T_mult", "eta_min", "dropout", "seed",
                "folds", "test_fraction", "max_samples", "cv_weights", "train_fraction", "input_norm", "warmup_epochs")
#: Values of resume keys added later, for a config.json written before they existed.
_RESUME_DEFAULTS = {"train_fraction": 1.0, "input_norm": "none", "warmup_epochs": 0.0}

def protocol_label(cfg: TrainConfig, n_samples: int | None = None) -> str:
    """One line saying which protocol a run followed (``metrics["protocol"]``)."""
    if not cfg.folds:
        label = "final fit only: no cross-validation, cv_mae is null (not the paper's full protocol)"
    else:
        label = f"{cfg.folds}-fold cross-validation on the 90 % + final fit on the 90 %"
        if cfg.folds != FULL_PROTOCOL["folds"]:
            label += f" (the paper: {FULL_PROTOCOL['folds']} folds)"
    differ = [f"{k} {getattr(cfg, k)} (paper {'all samples' if v is None else v})"
              for k, v in FULL_PROTOCOL.items() if k != "folds" and getattr(cfg, k) != v
              and not (k == "max_samples" and n_samples is not None and cfg.max_samples >= n_samples)]
    if cfg.train_fraction < 1:
        label += f"; learning-curve point: trained on a nested {cfg.train_fraction:.4g} share of the 90 %"
    if cfg.mode == "quick":
        label += "; quick-mode demonstration, not a result"
    if cfg.input_norm not in (None, "none") or cfg.warmup_epochs:
        label += (f"; our choices where the paper is silent: inputs scaled {cfg.input_norm!r}, "
                  f"learning-rate warm-up {cfg.warmup_epochs:g} epochs")
    if differ:
        label += "; differs from the paper's protocol in " + ", ".join(differ)
    return label


def check_same_run(config_path: Path, cfg: TrainConfig) -> None:
    """Raise unless the ``config.json`` at ``config_path`` (if any) holds a run with ``cfg``'s settings
    (those of :data:`_RESUME_KEYS`; target aliases count as their canonical names)."""
    if not config_path.exists():
        return
    cfg_dict = cfg.to_dict()
    old = {**_RESUME_DEFAULTS, **read_config(config_path)["config"]}
    new = {**cfg_dict, "targets": [registry.canonical_target(t, strict=False) for t in cfg.targets]}
    changed = [k for k in _RESUME_KEYS if old.get(k) != new.get(k)]
    if changed:
        raise LeanECDError(f"{config_path}: run directory holds a run with different settings "
                           f"({', '.join(f'{k}: {old.get(k)!r} -> {cfg_dict.get(k)!r}' for k in changed)}); "
                           "use a new run directory")
