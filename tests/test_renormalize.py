"""Tests of leanecd.renormalize.remove_negative (paper §2.2.2)."""

from __future__ import annotations

import itertools
import time

import numpy as np
import pytest

from leanecd.errors import FieldError
from leanecd.io import ECDField
from leanecd.renormalize import label_periodic, remove_negative


def _field(rho, edge=3.0):
    rho = np.asarray(rho, dtype=float)
    return ECDField(rho=rho, lattice=edge * np.eye(3), source="test field")


def _ring(values):
    """A 1-D periodic ring of voxels, as an (n, 1, 1) field."""
    return _field(np.asarray(values, float)[:, None, None])


def _reference(rho):
    """Slow, set-based implementation of the documented rule, for cross-checking."""
    shape = rho.shape
    r = rho.copy()

    def nbrs(v):
        for ax in range(3):
            for s in (1, -1):
                w = list(v)
                w[ax] = (w[ax] + s) % shape[ax]
                yield tuple(w)

    # periodic 6-connected clusters of negatives
    seen, groups = set(), []
    for v in itertools.product(*map(range, shape)):
        if r[v] < 0 and v not in seen:
            comp, stack = {v}, [v]
            seen.add(v)
            while stack:
                u = stack.pop()
                for w in nbrs(u):
                    if r[w] < 0 and w not in seen:
                        seen.add(w)
                        comp.add(w)
                        stack.append(w)
            groups.append({"region": comp, "front": set(comp), "deficit": -sum(r[u] for u in comp)})
    for g in groups:
        for u in g["region"]:
            r[u] = 0.0
    active = list(groups)
    while active:
        while True:
            cands = [{w for u in g["front"] for w in nbrs(u)} - g["region"] for g in active]
            pair = None
            for (i, g), (j, h) in itertools.combinations(enumerate(active), 2):
                if cands[i] & (cands[j] | h["region"]) or cands[j] & g["region"]:
                    pair = (i, j)
                    break
            if pair is None:
                break
            i, j = pair
            g, h = active[i], active[j]
            merged = {"region": g["region"] | h["region"], "front": g["front"] | h["front"],
                      "deficit": g["deficit"] + h["deficit"]}
            active = [x for k, x in enumerate(active) if k not in pair] + [merged]
        still = []
        for g, cand in zip(active, cands):
            assert cand, "stalled"
            s = sum(r[w] for w in cand)
            if s > g["deficit"]:
                for w in cand:
                    r[w] = (s - g["deficit"]) / len(cand)
            else:
                for w in cand:
                    r[w] = 0.0
                g["region"] |= cand
                g["front"] = cand
                g["deficit"] -= s
                if g["deficit"] > 0:
                    still.append(g)
        active = still
    return r


def _dilate_periodic(mask, steps):
    out = mask.copy()
    for _ in range(steps):
        grown = out.copy()
        for ax in range(3):
            grown |= np.roll(out, 1, ax) | np.roll(out, -1, ax)
        out = grown
    return out


def _random_field(shape, fraction, seed):
    rng = np.random.default_rng(seed)
    rho = rng.uniform(0.0, 1.0, shape)
    neg = rng.random(shape) < fraction
    rho[neg] = -rng.uniform(0.0, 1.5, neg.sum())
    positive, negative = rho[~neg].sum(), -rho[neg].sum()
    if negative > 0.8 * positive:  # keep the total positive (80 % of the positive charge at most)
        rho[neg] *= 0.8 * positive / negative
    return rho


# --------------------------------------------------------------------------- hand-computed


def test_ring_hand_computed():
    # cluster {2}: deficit 3; layer {1, 3} sums 2.5 <= 3 -> zeroed, deficit 0.5;
    # layer {0, 4} sums 5 > 0.5 -> each gets (5 - 0.5) / 2 = 2.25
    out = remove_negative(_ring([1, 2, -3, 0.5, 4, 1, 1, 1]))
    assert np.array_equal(out.rho.ravel(), [2.25, 0, 0, 0, 2.25, 1, 1, 1])
    assert out.meta["remove_negative"]["clusters"] == 1
    assert out.meta["remove_negative"]["layer_steps"] == 2


def test_ring_two_clusters_meeting_are_merged_by_hand():
    # clusters {0} and {2} both reach voxel 1 in their first layer -> merged:
    # deficit 2, layer {7, 1, 3} sums 11 -> each gets (11 - 2) / 3 = 3
    out = remove_negative(_ring([-1, 1, -1, 5, 5, 5, 5, 5]))
    assert np.allclose(out.rho.ravel(), [0, 3, 0, 3, 5, 5, 5, 3], rtol=0, atol=1e-15)
    assert out.meta["remove_negative"]["merges"] == 1


def test_ring_exactly_met_deficit_stops_without_flattening():
    out = remove_negative(_ring([3, 1, -3, 2, 7, 9]))
    assert np.array_equal(out.rho.ravel(), [3, 0, 0, 0, 7, 9])


def test_ring_layers_meeting_regions_are_merged_by_hand():
    # clusters {0} and {3}: first layers {9, 1} and {2, 4} (0.8 <= 1 each) are zeroed,
    # deficits 0.2 and 0.2. Next, A's layer reaches B's region (voxel 2) -> merged:
    # deficit 0.4, layer {8, 5} sums 10 -> each gets (10 - 0.4) / 2 = 4.8
    out = remove_negative(_ring([-1, 0.3, 0.3, -1, 0.5, 5, 5, 5, 5, 0.5]))
    assert np.allclose(out.rho.ravel(), [0, 0, 0, 0, 0, 4.8, 5, 5, 4.8, 0], rtol=0, atol=1e-14)
    assert out.meta["remove_negative"]["merges"] == 1


def test_cluster_wrapping_across_boundary_hand_computed():
    # voxels 0 and 5 of a 6-ring are one cluster through the boundary: deficit 2;
    # layer {1, 4} sums 4 > 2 -> each gets 1
    out = remove_negative(_ring([-1, 2, 6, 6, 2, -1]))
    assert np.array_equal(out.rho.ravel(), [0, 1, 6, 6, 1, 0])
    assert out.meta["remove_negative"]["clusters"] == 1


# --------------------------------------------------------------------------- invariants


@pytest.mark.parametrize("seed, fraction", [(0, 0.05), (1, 0.2), (2, 0.45), (3, 0.7)])
def test_invariants_on_random_fields(seed, fraction):
    field = _field(_random_field((9, 10, 11), fraction, seed))
    out = remove_negative(field)
    assert out.rho.min() >= 0.0
    assert out.n_electrons == pytest.approx(field.n_electrons, rel=1e-12, abs=0)
    steps = out.meta["remove_negative"]["layer_steps"]
    far = ~_dilate_periodic(field.rho < 0, steps)
    assert np.array_equal(out.rho[far].view(np.int64), field.rho[far].view(np.int64))


@pytest.mark.parametrize("seed, fraction", [(10, 0.1), (11, 0.3), (12, 0.55)])
def test_matches_slow_reference(seed, fraction):
    rho = _random_field((5, 6, 7), fraction, seed)
    out = remove_negative(_field(rho)).rho
    assert np.allclose(out, _reference(rho), rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("shape", [(40, 1, 1), (7, 8, 1)])
@pytest.mark.parametrize("seed", range(6))
def test_matches_slow_reference_on_rings_and_slabs(shape, seed):
    rho = _random_field(shape, 0.35, 100 + seed)
    out = remove_negative(_field(rho)).rho
    assert np.allclose(out, _reference(rho), rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("shift", [(3, 0, 0), (0, 5, 2), (7, 1, 4)])
def test_translation_equivariant(shift):
    """Periodic clusters and order-independent merging: rolling the input rolls the output."""
    rho = _random_field((8, 9, 10), 0.3, 4)
    out = remove_negative(_field(rho)).rho
    rolled = remove_negative(_field(np.roll(rho, shift, axis=(0, 1, 2)))).rho
    assert np.allclose(rolled, np.roll(out, shift, axis=(0, 1, 2)), rtol=1e-12, atol=1e-14)


def test_no_negatives_returns_equal_copy():
    rho = np.random.default_rng(3).uniform(0.0, 1.0, (6, 7, 8))
    rho[2, 3, 4] = 0.0
    field = _field(rho)
    out = remove_negative(field)
    assert np.array_equal(out.rho, field.rho)
    assert out.rho is not field.rho
    assert out.meta["remove_negative"]["clusters"] == 0


def test_isolated_cluster_only_touches_its_layers():
    rho = np.full((12, 12, 12), 0.1)
    rho[5, 5, 5] = -0.5  # needs the 6 face neighbours (0.6 > 0.5): one final layer
    out = remove_negative(_field(rho)).rho
    changed = np.argwhere(out != rho)
    expected = {(5, 5, 5), (4, 5, 5), (6, 5, 5), (5, 4, 5), (5, 6, 5), (5, 5, 4), (5, 5, 6)}
    assert {tuple(c) for c in changed} == expected
    assert out[4, 5, 5] == pytest.approx((0.6 - 0.5) / 6)


def test_deeper_cluster_peels_two_layers():
    rho = np.full((12, 12, 12), 0.1)
    rho[5, 5, 5] = -1.0  # first layer: 6 voxels, 0.6 <= 1.0 -> zeroed, deficit 0.4
    out = remove_negative(_field(rho)).rho  # second layer: 18 voxels at distance 2, 1.8 > 0.4
    dist = np.abs(np.indices(rho.shape) - 5).sum(0)
    assert np.all(out[dist == 1] == 0.0)
    assert np.allclose(out[dist == 2], (1.8 - 0.4) / 18)
    assert np.array_equal(out[dist > 2], rho[dist > 2])


def test_clusters_on_opposite_faces_are_one_cluster():
    mask = np.zeros((6, 6, 6), bool)
    mask[0, 2, 2] = mask[5, 2, 2] = True  # touch through the x boundary
    mask[3, 0, 0] = mask[3, 5, 5] = True  # not face-adjacent, even periodically (edge)
    labels, count = label_periodic(mask)
    assert count == 3
    assert labels[0, 2, 2] == labels[5, 2, 2]
    assert labels[3, 0, 0] != labels[3, 5, 5]


def test_touching_clusters_conserve_and_vanish():
    """Two clusters separated by one positive voxel; their first layers overlap."""
    rho = np.full((10, 10, 10), 0.2)
    rho[4, 4, 4] = -0.9
    rho[4, 4, 6] = -0.9
    rho[0, 4, 4] = rho[9, 4, 4] = -0.3  # and one that wraps across the boundary
    field = _field(rho)
    out = remove_negative(field)
    rec = out.meta["remove_negative"]
    assert rec["clusters"] == 3 and rec["merges"] == 1
    assert out.rho.min() >= 0
    assert out.n_electrons == pytest.approx(field.n_electrons, rel=1e-12, abs=0)
    assert np.allclose(out.rho, _reference(rho), rtol=1e-12, atol=1e-15)


# --------------------------------------------------------------------------- adversarial


def test_negative_almost_everywhere_with_positive_total():
    rho = np.full((7, 8, 9), -0.01)
    rho[3, 3, 3] = 10.0
    field = _field(rho)
    out = remove_negative(field)
    expected = np.zeros_like(rho)
    expected[3, 3, 3] = rho.sum()
    assert np.allclose(out.rho, expected, rtol=0, atol=1e-12)
    assert out.n_electrons == pytest.approx(field.n_electrons, rel=1e-12)


def test_checkerboard_merges_into_one_cluster_quickly():
    n = 40
    parity = np.indices((n, n, n)).sum(0) % 2
    rho = np.where(parity == 0, -1.0, 1.5)  # 32000 single-voxel clusters, all touching
    field = _field(rho)
    start = time.perf_counter()
    out = remove_negative(field)
    assert time.perf_counter() - start < 20  # generous; termination, not speed, is tested
    assert out.rho.min() >= 0
    assert out.n_electrons == pytest.approx(field.n_electrons, rel=1e-12)
    assert out.meta["remove_negative"]["clusters"] == n**3 // 2


@pytest.mark.parametrize("total", [0.0, -1.0])
def test_non_positive_total_raises(total):
    rho = np.random.default_rng(0).uniform(-1.0, 1.0, (5, 5, 5))
    rho += (total - rho.sum()) / rho.size
    with pytest.raises(FieldError, match="not positive"):
        remove_negative(_field(rho))


def test_tiny_positive_total_still_terminates():
    rho = np.full((4, 4, 4), -1.0)
    rho[0, 0, 0] = 63.0 + 1e-9
    out = remove_negative(_field(rho))
    assert out.rho.min() >= 0
    assert out.rho.sum() == pytest.approx(1e-9, rel=1e-3)


def test_conservation_with_a_million_voxel_cluster():
    """Cluster sums are pairwise, so a huge cluster keeps rounding at the level of rho.sum()."""
    rho = np.full((100, 100, 100), -0.01)
    rho[0, 0, 0] = 2.0e4
    field = _field(rho)
    out = remove_negative(field)
    assert out.rho.min() >= 0
    assert abs(out.n_electrons / field.n_electrons - 1) < 1e-13
