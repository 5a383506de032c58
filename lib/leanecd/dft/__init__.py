"""The project's own dataset: GPAW plane-wave DFT of cubic crystals.

For every compound this module

1. builds the structure from a cubic prototype (FCC-lattice prototypes in their
   **primitive** cell, as JARVIS stores them);
2. finds the equilibrium lattice constant: a cheap bracketing scan at coarse
   settings (3 points on the grid a_guess × 1.04^k, extended one point at a time
   until the minimum is inside; the guess is calibrated per prototype), then a production
   scan of 7 volumes around it (5 before protocol 0.7.0) with the **k-point mesh held
   fixed** for all volumes, re-centred again if the minimum is at an edge; the cut-off and
   k-point density depend on the chemistry (:meth:`DFTSettings.for_species`, 0.7.0);
   Compounds with an open d or f shell (Mn, Fe, Co, Ni or Cr only before 0.7.0) start the
   coarse scan spin-polarised from a ferromagnetic start; if no local moment survives it (all < 0.05 μB) near the
   coarse minimum (coarse points within 5 % of its lattice constant, since protocol
   0.6.0), the production scan runs spin-paired (the same solution, at half the cost);
   a moment seen only away from the minimum is first checked by one spin-polarised
   production SCF at the largest volume (0.6.1).
   Each spin-paired SCF of a scan starts from the wave functions and density of the
   previous volume (GPAW's plane-wave morph; same cutoff and k mesh, so the converged
   energy is the same as from scratch; since compound 167), and since protocol 0.5.0
   each spin-polarised one too, from the previous magnetised density, when that SCF
   kept a local moment;
3. fits a Birch–Murnaghan E(V) (ASE) for a0 (Å), B (GPa), B′ and E0;
4. runs one more SCF at a0 and stores its charge density and total energy per atom
   (since protocol 0.4.0 the production scan leaves out its centre volume and this
   SCF, at the a0 of the 4 other volumes, is the fit's fifth point; the field is
   recomputed at the final a0 if they differ by more than ``field_a_tolerance``);
5. checks the quality gates and writes ``fields/<id>.npz`` then
   ``records/<id>.json`` atomically (the record is the commit marker), or
   ``failures/<id>.json`` with the reason.

The stored field is GPAW's ``get_pseudo_density()``: the smooth pseudo density plus
the PAW compensation charges, on the calculation's real-space grid, in e/Å³. It is
GPAW's analogue of a VASP CHGCAR (pseudo density plus augmentation charges): it
integrates to the number of valence electrons, and like a CHGCAR it can be
negative near the cores, which is what the renormalisation chapter is for.

Run a batch with ``leanecd-dft run --out data/embedded --limit 200 --workers 2``;
it resumes where it stopped. ``leanecd-dft recompute`` recomputes the stored compounds
the current protocol changes (:func:`recompute_plan`; ``--which probe``: spin probes,
``--which retry``: failed compounds from another start), appending files and keeping the
earlier records in ``history/``. Requires the ``dft`` extra (GPAW).

The modules, one job each: :mod:`~leanecd.dft.settings` (:class:`DFTSettings`, the rules per
chemistry and magnetism, the protocol's versions), :mod:`~leanecd.dft.compounds` (prototypes,
candidates, computing order and costs, first guesses), :mod:`~leanecd.dft.scf` (one SCF),
:mod:`~leanecd.dft.protocol` (steps 2–4), :mod:`~leanecd.dft.batch` (step 5, the plans and the
batch), :mod:`~leanecd.dft.layout` (the directory's files), :mod:`~leanecd.dft.labels`
(``labels.csv``, ``dataset.json``), :mod:`~leanecd.dft.references` (independent references
of the labels) and :mod:`~leanecd.dft.cli` (``leanecd-dft``).
"""

from __future__ import annotations

# The package's public names, used as ``dft.<name>`` by card, data, the tests, benchmarks and the appendix.
from .batch import (
    PROBE_REASON,
    RETRY_STARTS,
    STOP_FILE,
    probe_plan,
    recompute_plan,
    request_stop,
    retry_plan,
    run_batch,
    run_one,
)
from .compounds import (
    GROUP,
    GUESS_SCALE,
    MEASURED_CORE_S,
    PAPER_COMPOSITION,
    PROTOTYPES,
    Prototype,
    atoms_from_dict,
    atoms_to_dict,
    build_atoms,
    candidate_compounds,
    compound_id,
    cost_weight,
    expected_core_s,
    guess_lattice_constant,
    plan,
)
from .labels import (
    LABEL_COLUMNS,
    file_hashes,
    label_reliability,
    label_row,
    scan_offset,
    write_dataset_json,
    write_labels,
)
from .layout import HISTORY, PROBES
from .protocol import compute_compound, compute_structure, recompute_compound, scan_energies, spin_probe
from .scf import antiferro_moments
from .settings import (
    DATASET_NAME,
    DATASET_VERSION,
    MAGNETIC,
    OPEN_SHELL,
    OPEN_SHELL_MOMENT,
    PROTOCOL_VERSIONS,
    SETTINGS_062,
    DFTSettings,
    initial_moments,
    is_magnetic_candidate,
    protocol_version,
    spin_decision,
    unconverged_reason,
)

__all__ = [
    "DATASET_NAME", "DATASET_VERSION", "GROUP", "GUESS_SCALE", "HISTORY", "LABEL_COLUMNS", "MAGNETIC",
    "MEASURED_CORE_S", "OPEN_SHELL", "OPEN_SHELL_MOMENT", "PAPER_COMPOSITION", "PROBES", "PROBE_REASON",
    "PROTOCOL_VERSIONS", "PROTOTYPES", "RETRY_STARTS", "SETTINGS_062", "STOP_FILE", "DFTSettings", "Prototype",
    "antiferro_moments", "atoms_from_dict", "atoms_to_dict", "build_atoms", "candidate_compounds", "compound_id",
    "compute_compound", "compute_structure", "cost_weight", "expected_core_s", "file_hashes", "guess_lattice_constant",
    "initial_moments", "is_magnetic_candidate", "label_reliability", "label_row", "main", "plan", "probe_plan",
    "protocol_version", "recompute_compound", "recompute_plan", "request_stop", "retry_plan", "run_batch",
    "run_one", "scan_energies", "scan_offset", "spin_decision", "spin_probe", "unconverged_reason",
    "write_dataset_json", "write_labels",
]


def main(argv=None) -> int:
    """The ``leanecd-dft`` command (:func:`leanecd.dft.cli.main`; the console script's entry point).

    Imported when called: the command writes the dataset card, whose module reads this package."""
    from .cli import main as cli_main

    return cli_main(argv)
