"""One home for the names that cross modules: models, targets and dataset sources.

Every other module asks this one; nothing else lists model names, target spellings or
source names. Names are normalised here, once, at the boundary (:func:`target`,
:func:`model`, :func:`source`), and an unknown name raises a :class:`LeanECDError`
that lists the known ones.

Adding one is one entry here plus one file:

- a model: an entry in :data:`MODELS`; a network also needs its builder in
  :mod:`leanecd.models` (``kind="lean"`` or ``"raw-density"``), a baseline its maker in
  :mod:`leanecd.baselines`. The training CLI, the metrics tables, the figures' colours
  and chapter 7 pick it up from here.
- a target: an entry in :data:`TARGETS` (canonical column name, property, unit,
  aliases); every source must then provide the column.
- a dataset source: a loader function ``load(root, **options) -> Dataset`` in a module
  of its own, and an entry in :data:`SOURCES` naming it.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field

from .errors import LeanECDError

__all__ = ["Model", "Target", "Source", "MODELS", "TARGETS", "SOURCES", "model", "target", "source",
           "canonical_target", "model_names", "model_label", "target_label", "target_unit"]


@dataclass(frozen=True)
class Model:
    """A model or baseline as the book names it.

    ``kind``: ``"lean"`` (the paper's Models A–C, on autocorrelations), ``"raw-density"``
    (the heavy 3-D CNN baselines, on ρ itself) or ``"baseline"`` (no network).
    ``printed_parameters``: the count printed in Table 1 of the paper, if any.
    ``inputs``: what the model sees, as Table 3 says it (default by ``kind``).
    """

    name: str
    label: str
    kind: str
    color: str
    printed_parameters: int | None = None
    inputs: str | None = None

    @property
    def input(self) -> str:
        """What the model sees (Table 3's "input" column)."""
        default = {"lean": "F_r (autocorrelation)", "raw-density": "ρ_s (raw density)"}.get(self.kind, "none")
        return self.inputs or default

    @property
    def is_network(self) -> bool:
        """True for the CNNs that ``leanecd-train`` trains."""
        return self.kind in ("lean", "raw-density")


#: Models and baselines, in the order of the book's tables.
MODELS: dict[str, Model] = {m.name: m for m in (
    Model("A", "Model A", "lean", "tab:blue", 80_825),
    Model("B", "Model B", "lean", "tab:orange", 310_201),
    Model("C", "Model C", "lean", "tab:purple", 80_834),
    Model("mean", "training mean", "baseline", "0.45"),
    Model("rf", "random forest (composition)", "baseline", "tab:green", inputs="composition"),
    Model("ridge", "ridge on the autocorrelation (linear)", "baseline", "tab:brown",
          inputs="F_r (autocorrelation, every 5th point)"),
    Model("zhao", "Zhao et al. 3D-CNN (raw ρ)", "raw-density", "tab:red", 2_360_736),
    Model("mirzaee", "Mirzaee et al. 3D-CNN (raw ρ)", "raw-density", "tab:pink", 2_129_672),
)}


def model_names(kind: str | None = None) -> tuple[str, ...]:
    """Registered model names in table order; only those of ``kind`` if given
    (``"network"`` selects every kind that ``leanecd-train`` trains)."""
    if kind == "network":
        return tuple(n for n, m in MODELS.items() if m.is_network)
    return tuple(n for n, m in MODELS.items() if kind is None or m.kind == kind)


def model(name: str) -> Model:
    """The registered model called ``name`` (exact spelling; ``"a"`` is not ``"A"``)."""
    try:
        return MODELS[str(name)]
    except KeyError:
        raise LeanECDError(f"unknown model {name!r}; known: {', '.join(MODELS)}") from None


def model_label(name: str) -> str:
    """Display name of a model (``"Model A"``); an unregistered name as it is."""
    m = MODELS.get(str(name))
    return m.label if m else str(name)


@dataclass(frozen=True)
class Target:
    """A label column: canonical name (with its unit), property, unit and other spellings."""

    name: str
    property: str
    unit: str
    aliases: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """Human label with the unit, e.g. ``"bulk modulus (GPa)"``."""
        return f"{self.property} ({self.unit})"


#: Label columns every dataset source provides, in this order.
TARGETS: dict[str, Target] = {t.name: t for t in (
    Target("bulk_modulus_GPa", "bulk modulus", "GPa", ("bulk_modulus", "bulk_modulus_kv")),
    Target("energy_per_atom_eV", "total energy", "eV/atom", ("total_energy", "optb88vdw_total_energy")),
)}

def _aliases() -> dict[str, Target]:
    """Every spelling -> its target (built on each call, so an entry added to TARGETS counts at once)."""
    return {alias: t for t in TARGETS.values() for alias in (t.name, *t.aliases)}


def target(name: str) -> Target:
    """The registered target spelled ``name`` (canonical name or an alias)."""
    try:
        return _aliases()[str(name)]
    except KeyError:
        known = ", ".join(f"{t.name} ({', '.join(t.aliases)})" for t in TARGETS.values())
        raise LeanECDError(f"unknown target {name!r}; known: {known}") from None


def canonical_target(name: str, strict: bool = True) -> str:
    """``bulk_modulus_GPa`` for ``"bulk_modulus"`` etc.: the canonical column name.

    ``strict=False`` returns an unregistered name unchanged (a label column of the
    user's own CSV) instead of raising: what readers of run directories use.
    """
    if not strict and str(name) not in _aliases():
        return str(name)
    return target(name).name


def target_label(name: str) -> str:
    """Human label with the unit, e.g. ``"bulk modulus (GPa)"``; an unregistered name as it is."""
    t = _aliases().get(str(name))
    return t.label if t else str(name)


def target_unit(name: str) -> str:
    """Unit of a target (``"GPa"``, ``"eV/atom"``); ``""`` for an unregistered name."""
    t = _aliases().get(str(name))
    return t.unit if t else ""


@dataclass(frozen=True)
class Source:
    """A dataset source: ``loader`` is ``"module:function"``, imported on first use;
    ``options``: the keyword options of :func:`leanecd.data.load_dataset` it takes."""

    name: str
    loader: str
    description: str
    options: tuple[str, ...] = field(default=())

    def load(self, *args, **kwargs):
        """Call the source's loader (imported lazily: JARVIS needs extra packages)."""
        module, func = self.loader.split(":")
        return getattr(importlib.import_module(module), func)(*args, **kwargs)


#: Dataset sources :func:`leanecd.data.load_dataset` knows by name; any other string is
#: read as a directory of CHGCAR files.
SOURCES: dict[str, Source] = {s.name: s for s in (
    Source("embedded", "leanecd.sources:load_embedded",
           "the book's own GPAW-PBE dataset (data/embedded: records, fields, labels)"),
    Source("chgcar-dir", "leanecd.sources:load_chgcar_dir",
           "a directory of VASP CHGCAR files with a labels.csv", ("labels",)),
    Source("jarvis", "leanecd.jarvis:load_jarvis",
           "the paper's JARVIS-DFT compounds (labels from dft_3d, CHGCARs supplied by you)",
           ("chgcar_dir", "jarvis_json", "entries", "jarvis_dataset", "cache_dir", "space_groups")),
)}


def source(name: str) -> Source:
    """The registered dataset source called ``name``."""
    try:
        return SOURCES[str(name)]
    except KeyError:
        raise LeanECDError(f"unknown dataset source {name!r}; known: {', '.join(SOURCES)}") from None
