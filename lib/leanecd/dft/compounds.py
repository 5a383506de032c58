"""The compounds: cubic prototypes and the structures built from them, the composition rules
that choose the candidates, the order and expected cost of computing them, and the first guess
of each lattice constant (Å)."""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers, covalent_radii
from ase.formula import Formula
from ase.neighborlist import neighbor_list

from .settings import MAGNETIC


@dataclass(frozen=True)
class Prototype:
    name: str
    spacegroup: int
    symbol: str
    lattice: str  # "fcc" (stored primitive) or "sc"
    sites: tuple  # fractional positions in the conventional cube, one per FCC coset
    description: str


_Q = 0.25
PROTOTYPES = {
    p.name: p
    for p in [
        Prototype("diamond", 227, "Fd-3m", "fcc", ((0, 0, 0), (_Q, _Q, _Q)),
                  "A4 (Si); validation only, not in the dataset's space groups"),
        Prototype("fcc", 225, "Fm-3m", "fcc", ((0, 0, 0),), "A1 element"),
        Prototype("rocksalt", 225, "Fm-3m", "fcc", ((0, 0, 0), (0.5, 0.5, 0.5)), "B1 AX (NaCl)"),
        Prototype("fluorite", 225, "Fm-3m", "fcc", ((0, 0, 0), (_Q, _Q, _Q), (0.75, 0.75, 0.75)),
                  "C1 AX2 (CaF2); antifluorite A2X has A on the X sites"),
        Prototype("heusler", 225, "Fm-3m", "fcc", ((0, 0, 0), (0.5, 0.5, 0.5), (_Q, _Q, _Q), (0.75, 0.75, 0.75)),
                  "L2_1 X2YZ (Cu2MnAl): Y, Z, X, X"),
        Prototype("elpasolite", 225, "Fm-3m", "fcc",
                  ((0, 0, 0), (0.5, 0.5, 0.5), (_Q, _Q, _Q), (0.75, 0.75, 0.75),
                   (0.25, 0, 0), (0.75, 0, 0), (0, 0.25, 0), (0, 0.75, 0), (0, 0, 0.25), (0, 0, 0.75)),
                  "A2BB'X6 (K2NaAlF6): B, B', A, A, X×6 (X at x=0.25 of B)"),
        Prototype("zincblende", 216, "F-43m", "fcc", ((0, 0, 0), (_Q, _Q, _Q)), "B3 AX (ZnS)"),
        Prototype("half-heusler", 216, "F-43m", "fcc", ((0, 0, 0), (0.5, 0.5, 0.5), (_Q, _Q, _Q)),
                  "C1_b XYZ (MgAgAs): Z at 4a, X at 4b, Y at 4c"),
        Prototype("inverse-heusler", 216, "F-43m", "fcc",
                  ((0, 0, 0), (_Q, _Q, _Q), (0.5, 0.5, 0.5), (0.75, 0.75, 0.75)), "X2YZ (Hg2CuTi): X, X, Y, Z"),
        Prototype("quaternary-heusler", 216, "F-43m", "fcc",
                  ((0, 0, 0), (0.5, 0.5, 0.5), (_Q, _Q, _Q), (0.75, 0.75, 0.75)), "XX'YZ (LiMgPdSn): Z, Y, X, X'"),
        Prototype("cscl", 221, "Pm-3m", "sc", ((0, 0, 0), (0.5, 0.5, 0.5)), "B2 AB (CsCl)"),
        Prototype("l12", 221, "Pm-3m", "sc", ((0, 0, 0), (0, 0.5, 0.5), (0.5, 0, 0.5), (0.5, 0.5, 0)),
                  "L1_2 A3B (Cu3Au): B, A, A, A"),
        Prototype("reo3", 221, "Pm-3m", "sc", ((0, 0, 0), (0.5, 0, 0), (0, 0.5, 0), (0, 0, 0.5)),
                  "D0_9 BX3 (ReO3): B, X, X, X"),
        Prototype("perovskite", 221, "Pm-3m", "sc",
                  ((0, 0, 0), (0.5, 0.5, 0.5), (0.5, 0.5, 0), (0.5, 0, 0.5), (0, 0.5, 0.5)),
                  "E2_1 ABX3 (SrTiO3): A, B, X, X, X"),
        Prototype("antiperovskite", 221, "Pm-3m", "sc",
                  ((0, 0, 0), (0.5, 0.5, 0.5), (0.5, 0.5, 0), (0.5, 0, 0.5), (0, 0.5, 0.5)),
                  "A3BX (Fe3SnC, Li3OCl): B, X, A, A, A"),
    ]
}

FCC_PRIMITIVE = np.array([[0.0, 0.5, 0.5], [0.5, 0.0, 0.5], [0.5, 0.5, 0.0]])


def cells_per_cube(prototype: str) -> int:
    """Stored cells per conventional cube: 4 for an FCC-lattice prototype (stored as the
    primitive cell, a quarter of the cube), else 1."""
    return 4 if PROTOTYPES[prototype].lattice == "fcc" else 1


def build_atoms(prototype: str, species: tuple, a: float):
    """Atoms of ``prototype`` with one symbol per site (see :data:`PROTOTYPES`), edge ``a`` Å.

    FCC-lattice prototypes come in the primitive cell a1 = (0, a/2, a/2), … .
    """
    p = PROTOTYPES[prototype]
    if len(species) != len(p.sites):
        raise ValueError(f"{prototype} has {len(p.sites)} sites, got {species}")
    cart = np.array(p.sites, dtype=float) * a
    cell = FCC_PRIMITIVE * a if p.lattice == "fcc" else np.eye(3) * a
    atoms = Atoms(list(species), positions=cart, cell=cell, pbc=True)
    atoms.wrap()
    return atoms


ALKALI = ["Li", "Na", "K", "Rb", "Cs"]
ALKALINE_EARTH = ["Mg", "Ca", "Sr", "Ba"]
HALOGEN = ["F", "Cl", "Br", "I"]
CHALCOGEN = ["O", "S", "Se", "Te"]
GROUP = {  # valence electrons counted as group number (s+d for TMs, s+p for main group)
    "Li": 1, "Na": 1, "K": 1, "Rb": 1, "Cs": 1, "Be": 2, "Mg": 2, "Ca": 2, "Sr": 2, "Ba": 2,
    "Sc": 3, "Y": 3, "Ti": 4, "Zr": 4, "Hf": 4, "V": 5, "Nb": 5, "Ta": 5, "Cr": 6, "Mo": 6, "W": 6,
    "Mn": 7, "Re": 7, "Fe": 8, "Ru": 8, "Os": 8, "Co": 9, "Rh": 9, "Ir": 9, "Ni": 10, "Pd": 10, "Pt": 10,
    "Cu": 11, "Ag": 11, "Au": 11, "Zn": 12, "Cd": 12, "Hg": 12, "B": 3, "Al": 3, "Ga": 3, "In": 3, "Tl": 3,
    "C": 4, "Si": 4, "Ge": 4, "Sn": 4, "Pb": 4, "N": 5, "P": 5, "As": 5, "Sb": 5, "Bi": 5,
    "O": 6, "S": 6, "Se": 6, "Te": 6, "F": 7, "Cl": 7, "Br": 7, "I": 7,
}


def candidate_compounds() -> list[tuple[str, tuple]]:
    """All (prototype, species-per-site) pairs allowed by the documented rules.

    Ionic prototypes are charge balanced with common oxidation states; intermetallic
    prototypes follow the usual electron-count rules (half-Heusler 8/18 electrons).
    """
    out: list[tuple[str, tuple]] = []
    add = lambda proto, *sp: out.append((proto, tuple(sp)))  # noqa: E731
    # A1: elements whose ground state is fcc (ASE reference states), no noble gases or f elements
    for el in ["Al", "Ni", "Cu", "Rh", "Pd", "Ag", "Ir", "Pt", "Au", "Pb", "Ca", "Sr"]:
        add("fcc", el)
    # B1 rock salt: A+X-, A2+X2-, and refractory carbides/nitrides M(C,N)
    for A, X in itertools.product(ALKALI, HALOGEN):
        add("rocksalt", A, X)
    for A, X in itertools.product(ALKALINE_EARTH, ["O", "S", "Se", "Te"]):
        add("rocksalt", A, X)
    for A, X in itertools.product(["Sc", "Ti", "V", "Zr", "Nb", "Hf", "Ta"], ["C", "N"]):
        add("rocksalt", A, X)
    # C1 fluorite AX2 (A2+ with F/Cl, A4+ with O) and antifluorite A2X (A+ with chalcogen)
    for A, X in itertools.product(["Ca", "Sr", "Ba", "Cd", "Pb"], ["F", "Cl"]):
        add("fluorite", A, X, X)
    for A in ["Zr", "Hf", "Ti"]:
        add("fluorite", A, "O", "O")
    for A, X in itertools.product(["Li", "Na", "K", "Rb"], CHALCOGEN):
        add("fluorite", X, A, A)
    # B3 zinc blende: III-V, II-VI, I-VII, IV-IV
    for A, X in itertools.product(["B", "Al", "Ga", "In"], ["N", "P", "As", "Sb"]):
        add("zincblende", A, X)
    for A, X in itertools.product(["Be", "Zn", "Cd"], ["O", "S", "Se", "Te"]):
        add("zincblende", A, X)
    for A, X in itertools.product(["Cu", "Ag"], ["Cl", "Br", "I"]):
        add("zincblende", A, X)
    add("zincblende", "Si", "C")
    # B2 CsCl: a group 8-11 transition metal with a group 2-4, 12 or 13 metal
    for A, B in itertools.product(["Fe", "Co", "Ni", "Cu", "Ru", "Rh", "Pd", "Ag", "Au", "Pt"],
                                  ["Be", "Mg", "Sc", "Ti", "Zr", "Hf", "Zn", "Al", "Ga", "In"]):
        add("cscl", A, B)
    # L1_2 A3B: late transition metal A (groups 9-11), B a main-group or early TM metal
    for A, B in itertools.product(["Ni", "Pd", "Pt", "Cu", "Au", "Ir", "Rh"],
                                  ["Al", "Ga", "In", "Ge", "Sn", "Si", "Ti", "Zr", "Hf", "V", "Nb", "Ta",
                                   "Sc", "Mg", "Zn"]):
        add("l12", B, A, A, A)
    # ReO3-type: B6+ O3 and B3+ F3
    for B in ["W", "Re", "Mo"]:
        add("reo3", B, "O", "O", "O")
    for B in ["Al", "Sc", "Ga", "In", "Fe", "Cr", "V", "Ti"]:
        add("reo3", B, "F", "F", "F")
    # perovskite ABX3: A+B5+O3, A2+B4+O3, A+B2+F3
    for A, B in itertools.product(["Na", "K", "Rb"], ["Nb", "Ta", "V"]):
        add("perovskite", A, B, "O", "O", "O")
    for A, B in itertools.product(["Ca", "Sr", "Ba"], ["Ti", "Zr", "Hf", "Sn", "Ge"]):
        add("perovskite", A, B, "O", "O", "O")
    for A, B in itertools.product(["Na", "K", "Rb", "Cs"], ["Mg", "Zn", "Ca", "Cd", "Mn", "Fe", "Co", "Ni"]):
        add("perovskite", A, B, "F", "F", "F")
    # anti-perovskite A3BX: TM3 M (C, N) like Fe3SnC, and ionic Li3OCl-type
    for A, B, X in itertools.product(["Mn", "Fe", "Co", "Ni"], ["Al", "Ga", "Zn", "Sn", "In", "Ge", "Mg", "Cu"],
                                     ["C", "N"]):
        add("antiperovskite", B, X, A, A, A)
    for A, B in itertools.product(["Li", "Na", "K"], ["Cl", "Br", "I"]):
        add("antiperovskite", B, "O", A, A, A)
    # L2_1 full Heusler X2YZ
    for X, Y, Z in itertools.product(["Co", "Fe", "Ni", "Cu", "Rh", "Pd"], ["Ti", "V", "Cr", "Mn", "Zr", "Hf", "Nb"],
                                     ["Al", "Ga", "In", "Si", "Ge", "Sn", "Sb"]):
        add("heusler", Y, Z, X, X)
    # inverse Heusler X2YZ (Hg2CuTi type): X lighter than Y among 3d metals
    for X, Y, Z in itertools.product(["Sc", "Ti", "V", "Cr", "Mn"], ["Fe", "Co", "Ni", "Cu"],
                                     ["Al", "Ga", "In", "Si", "Ge", "Sn"]):
        add("inverse-heusler", X, X, Y, Z)
    # half-Heusler XYZ with 8 or 18 valence electrons (Z at 4a, X at 4b, Y at 4c)
    for X, Y, Z in itertools.product(["Li", "Na", "Sc", "Ti", "Zr", "Hf", "V", "Nb", "Ta", "Mg"],
                                     ["Mg", "Zn", "Co", "Rh", "Ir", "Ni", "Pd", "Pt", "Fe", "Cu"],
                                     ["N", "P", "As", "Sb", "Bi", "Si", "Ge", "Sn", "Pb"]):
        vec = GROUP[X] + GROUP[Y] + GROUP[Z]
        if X != Y and vec in (8, 18):
            add("half-heusler", Z, X, Y)
    # LiMgPdSn-type quaternary Heusler XX'YZ with 21-24 valence electrons (Slater-Pauling)
    for X, X2 in itertools.combinations(["Co", "Fe", "Ni", "Cu", "Mn"], 2):
        for Y, Z in itertools.product(["Ti", "V", "Cr", "Mn", "Zr"], ["Al", "Ga", "Si", "Ge", "Sn"]):
            vec = GROUP[X] + GROUP[X2] + GROUP[Y] + GROUP[Z]
            if Y not in (X, X2) and 21 <= vec <= 24:
                add("quaternary-heusler", Z, Y, X, X2)
    # elpasolite A2BB'X6: A, B alkali, B' trivalent, X halogen
    for A, B, B3, X in itertools.product(["K", "Rb", "Cs"], ["Li", "Na", "K"], ["Al", "Sc", "Ga", "In", "Y", "Bi"],
                                         ["F", "Cl"]):
        if A != B:
            add("elpasolite", B, B3, A, A, X, X, X, X, X, X)
    return out


def compound_id(prototype: str, species: tuple) -> str:
    """Stable id: reduced formula plus prototype, e.g. ``NaCl-rocksalt``."""
    return f"{Formula(''.join(species)).reduce()[0].format('metal')}-{prototype}"


def cost_weight(prototype: str, species: tuple) -> float:
    """Rough relative cost of one compound (atoms³ × 2.5 if it holds a magnetic element):
    the plan's cost model before :data:`MEASURED_CORE_S` (compounds 1–494)."""
    w = len(species) ** 3
    return w * (2.5 if any(s in MAGNETIC for s in species) else 1.0)


#: Median core-seconds of one compound by (prototype, holds a magnetic element), measured on the
#: 491 compounds of version 0.6.2+491cpd (frozen: benchmarks/dft_cost.py prints the live figures).
#: The plan's cost model from compound 495 on; the atoms³ rule had magnetic Heuslers at 2.5× a
#: spin-paired one where they cost 2.5-3.5× more in practice, and perovskites at 4.6× a half-Heusler
#: where they cost 1.1×.
MEASURED_CORE_S = {
    ("antiperovskite", False): 144, ("antiperovskite", True): 262, ("cscl", False): 65, ("cscl", True): 107,
    ("elpasolite", False): 1138, ("fcc", False): 132, ("fcc", True): 306, ("fluorite", False): 75,
    ("half-heusler", False): 108, ("half-heusler", True): 119, ("heusler", False): 162, ("heusler", True): 408,
    ("inverse-heusler", False): 158, ("inverse-heusler", True): 433, ("l12", False): 137, ("l12", True): 483,
    ("perovskite", False): 120, ("perovskite", True): 329, ("quaternary-heusler", True): 1209,
    ("reo3", False): 102, ("reo3", True): 220, ("rocksalt", False): 46, ("zincblende", False): 52,
}


def expected_core_s(prototype: str, species: tuple) -> float:
    """Expected core-seconds of one compound: :data:`MEASURED_CORE_S` for its kind, else the
    largest measured figure of its prototype (a kind not yet measured is assumed expensive)."""
    magnetic = any(s in MAGNETIC for s in species)
    if (prototype, magnetic) in MEASURED_CORE_S:
        return float(MEASURED_CORE_S[prototype, magnetic])
    return float(max(v for (p, _), v in MEASURED_CORE_S.items() if p == prototype))


#: The paper's compounds by number of elements (15 + 494 + 947 + 93): the plan's target mix.
PAPER_COMPOSITION = {1: 15, 2: 494, 3: 947, 4: 93}


def plan(seed: int = 0) -> list[dict]:
    """Order in which compounds are computed: a seeded shuffle within each prototype,
    interleaved so that each prototype gets core time in proportion to the paper's share of
    its number of elements. Priority of a prototype's k-th compound = k × its
    :func:`expected_core_s` / (that share): cheap compounds come often, a magnetic one waits
    for its extra cost, and the mix of unary / binary / ternary / quaternary compounds moves
    toward the paper's.

    History (what the files in ``data/embedded`` were computed under; compounds already done
    are skipped, so a new rule only orders what is left): compounds 1–53 with
    k × cost_weight^0.5, 54–166 with k × cost_weight^0.75, both without the composition share;
    167–494 with k × cost_weight^0.75 / share; from 495 on this rule (measured cost), which cut
    the projected cost of the next 109 compounds from 7.3 to 5.9 core-hours."""
    rng = random.Random(seed)
    by_proto: dict[str, list] = {}
    for proto, sp in candidate_compounds():
        by_proto.setdefault(proto, []).append(sp)
    total = sum(PAPER_COMPOSITION.values())
    queue = []
    seen = set()
    for proto, lst in by_proto.items():
        rng.shuffle(lst)
        for rank, sp in enumerate(lst):
            cid = compound_id(proto, sp)
            if cid in seen:
                continue
            seen.add(cid)
            share = PAPER_COMPOSITION[len(set(sp))] / total
            priority = (rank + 1) * expected_core_s(proto, sp) / share
            queue.append((priority, cid, proto, sp))
    queue.sort()
    return [{"id": cid, "prototype": proto, "species": list(sp)} for _, cid, proto, sp in queue]


#: Median a0 / (covalent-radii guess) of each prototype over the 166 compounds of version 0.1.0,
#: rounded (frozen: computed once by benchmarks/dft_cost.py's data, not refitted as data grow).
#: Ternary prototypes came out 10-15 % smaller than the guess and needed 9-11 coarse SCFs.
GUESS_SCALE = {"antiperovskite": 0.91, "cscl": 0.98, "elpasolite": 0.89, "fcc": 1.02, "fluorite": 1.00,
               "half-heusler": 0.88, "heusler": 0.90, "inverse-heusler": 0.87, "l12": 0.96, "perovskite": 0.88,
               "quaternary-heusler": 0.85, "reo3": 0.90, "rocksalt": 1.01, "zincblende": 1.03}


def guess_lattice_constant(prototype: str, species: tuple) -> float:
    """Edge (Å) at which no pair of atoms is closer than the sum of their covalent radii.

    Only a starting point (typically within ±8 %); the scan finds the minimum."""
    atoms = build_atoms(prototype, species, 1.0)
    best = 0.0
    i, j, d = neighbor_list("ijd", atoms, 1.0)
    syms = atoms.get_chemical_symbols()
    for ii, jj, dd in zip(i, j, d):
        r = covalent_radii[atomic_numbers[syms[ii]]] + covalent_radii[atomic_numbers[syms[jj]]]
        best = max(best, r / dd)
    return float(best)


def atoms_to_dict(atoms) -> dict:
    """JSON-able form of a structure for a batch entry's ``"structure"`` key."""
    return {"numbers": [int(z) for z in atoms.numbers], "cell": np.asarray(atoms.cell[:]).tolist(),
            "scaled_positions": (atoms.get_scaled_positions(wrap=False) + 0.0).tolist(),  # + 0.0: no -0.0
            "pbc": [True, True, True]}


def atoms_from_dict(d: dict):
    """Inverse of :func:`atoms_to_dict`."""
    return Atoms(numbers=d["numbers"], cell=d["cell"], scaled_positions=d["scaled_positions"], pbc=d.get("pbc", True))
