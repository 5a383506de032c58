"""Removing negative densities while keeping the electron count (paper §2.2.2).

PAW augmentation can leave small pockets of negative density. The paper removes
them cluster by cluster:

1. *Clusters* are connected sets of negative voxels. Here: 6-neighbour (face)
   connectivity, periodic across the cell faces (a pocket that crosses the cell
   boundary is one cluster).
2. For a cluster with negative charge ``D`` (as a sum of rho over its voxels), peel
   boundary *layers* outward: a layer is every voxel face-adjacent (periodically)
   to the cluster or to the layers already peeled, not yet part of them. If the
   layer's sum ``S <= D``, the layer is zeroed and ``D -= S``; otherwise the layer
   is the last one: each of its voxels gets ``(S - D) / len(layer)`` (the remnant,
   spread evenly) and the cluster's voxels are zeroed. If ``D`` reaches exactly 0
   after a zeroed layer the cluster is done (no final layer to flatten).

All voxels have the same volume, so sums of rho stand for charges; the total sum
of rho, hence ``n_electrons``, is unchanged up to rounding.

Interacting clusters (the paper does not say): all clusters grow *simultaneously*,
one layer per step. When, at some step, two still-growing clusters would take the
same voxel, or one's layer reaches the other's cluster or peeled layers, they are
*merged* into one cluster, with the sum of their remaining deficits and the union
of their regions and layers, and the step is redone for the merged cluster. A
cluster that has finished is no longer special: the zeros and the flattened layer
it left are ordinary voxels that a still-growing cluster may peel later. This rule
does not depend on any ordering of the clusters (the result is translation
equivariant), never leaves a negative voxel, and conserves the sum exactly;
non-interacting clusters are treated exactly as the paper describes.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from .errors import FieldError
from .field import ECDField

__all__ = ["remove_negative", "label_periodic"]

CONNECTIVITY = "6-neighbour (faces), periodic across the cell boundary"


def label_periodic(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """Label the connected components of a boolean 3-D ``mask`` with periodic 6-neighbour connectivity.

    Returns ``(labels, count)`` like :func:`scipy.ndimage.label`: 0 outside the
    mask, 1..count inside, numbered in order of first voxel (C order).
    """
    labels, count = ndimage.label(mask)  # default structure: faces only
    if count == 0:
        return labels, 0
    pairs = []
    for axis in range(3):
        first = np.take(labels, 0, axis=axis)
        last = np.take(labels, -1, axis=axis)
        both = (first > 0) & (last > 0)
        if both.any():
            pairs.append(np.stack([first[both], last[both]]))
    if not pairs:
        return labels, count
    p = np.concatenate(pairs, axis=1) - 1
    graph = coo_matrix((np.ones(p.shape[1]), (p[0], p[1])), shape=(count, count))
    n_comp, comp = connected_components(graph, directed=False)
    lut = np.concatenate([[0], comp + 1])
    return lut[labels], int(n_comp)


def _face_neighbours(flat: np.ndarray, shape) -> np.ndarray:
    """The 6 periodic face neighbours of flat (C-order) voxel indices, shape (6 * len,)."""
    n1, n2, n3 = shape
    plane = n2 * n3
    i, rem = np.divmod(flat, plane)
    j, k = np.divmod(rem, n3)
    base_i = i * plane
    return np.concatenate([
        ((i + 1) % n1) * plane + rem,
        ((i - 1) % n1) * plane + rem,
        base_i + ((j + 1) % n2) * n3 + k,
        base_i + ((j - 1) % n2) * n3 + k,
        base_i + j * n3 + (k + 1) % n3,
        base_i + j * n3 + (k - 1) % n3,
    ])


def _sorted_unique(values: np.ndarray) -> np.ndarray:
    """Sorted distinct values (sort-based; faster here than np.unique's hash path)."""
    v = np.sort(values)
    if v.size:
        v = v[np.concatenate([[True], v[1:] != v[:-1]])]
    return v


def _segment_sums(ids: np.ndarray, values: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-id sums and counts; ids with many voxels are re-summed pairwise (np.sum) so
    that rounding stays at the level of ``values.sum()`` even for huge clusters."""
    sums = np.bincount(ids, weights=values, minlength=m)
    counts = np.bincount(ids, minlength=m)
    big = np.flatnonzero(counts > 1024)
    if big.size == 1 and counts[big[0]] == ids.size:
        sums[big[0]] = values.sum()
    elif big.size:
        sel = np.isin(ids, big)
        order = np.argsort(ids[sel], kind="stable")
        v = values[sel][order]
        ends = np.cumsum(counts[big])
        for b, start, end in zip(big, ends - counts[big], ends):
            sums[b] = v[start:end].sum()
    return sums, counts


def remove_negative(field: ECDField) -> ECDField:
    """Return ``field`` with every negative voxel removed as in paper §2.2.2; rho >= 0, same ``n_electrons``.

    See the module docstring for the rule (6-neighbour periodic clusters, layer
    peeling, merging of clusters whose layers meet). Voxels outside the clusters
    and the layers they touched are returned bit-for-bit unchanged; a field with
    no negative voxel is returned with an equal copy of ``rho``.
    ``meta["remove_negative"]`` records the clusters found, merges, layer steps
    and the negative charge moved (electrons). Raises :class:`FieldError` if the
    total charge is not positive (no non-negative field can keep it).
    """
    where = field.source or "ECDField"
    rho = field.rho
    shape = rho.shape
    record = {"connectivity": CONNECTIVITY, "clusters": 0, "merges": 0, "layer_steps": 0,
              "negative_charge_e": 0.0}
    negative = rho < 0
    if not negative.any():
        return field.with_rho(rho.copy(), meta=dict(field.meta, remove_negative=record))
    total = float(rho.sum())
    if not total > 0:
        raise FieldError(
            f"{where}: total charge is {field.n_electrons:.6g} e (not positive); negative densities "
            "cannot be removed while keeping the electron count"
        )

    labels, m = label_periodic(negative)
    r = rho.ravel().copy()
    neg_idx = np.flatnonzero(negative.ravel())
    neg_id = labels.ravel()[neg_idx] - 1
    deficit = -_segment_sums(neg_id, r[neg_idx], m)[0]  # > 0, in units of rho
    record.update(clusters=int(m), negative_charge_e=float(deficit.sum() * field.voxel_volume))
    owner = np.full(r.size, -1, dtype=np.int64)  # cluster id of the region a voxel belongs to
    owner[neg_idx] = neg_id
    r[neg_idx] = 0.0
    rep = np.arange(m)  # current representative of each original cluster id (always compressed)
    active = np.ones(m, dtype=bool)  # indexed by representative
    front_vox, front_id = neg_idx, neg_id
    steps = merges = 0

    while True:
        steps += 1
        while True:  # candidate layers; merge clusters until no two interact
            nb = _face_neighbours(front_vox, shape)
            ids = np.tile(front_id, 6)
            own = owner[nb]
            own_rep = np.where(own >= 0, rep[np.maximum(own, 0)], -1)
            own_active = own_rep >= 0
            own_active[own_active] = active[own_rep[own_active]]
            keep = ~(own_active & (own_rep == ids))
            nb, ids, own_rep, own_active = nb[keep], ids[keep], own_rep[keep], own_active[keep]
            key = _sorted_unique(nb * m + ids)
            cand_vox, cand_id = np.divmod(key, m)
            shared = np.flatnonzero(cand_vox[1:] == cand_vox[:-1])
            hit = own_active  # layer reaches another growing cluster's region
            if shared.size == 0 and not hit.any():
                break
            a = np.concatenate([cand_id[shared], ids[hit]])
            b = np.concatenate([cand_id[shared + 1], own_rep[hit]])
            graph = coo_matrix((np.ones(a.size), (a, b)), shape=(m, m))
            _, comp = connected_components(graph, directed=False)
            first = np.full(comp.max() + 1, m)
            np.minimum.at(first, comp, np.arange(m))
            new_rep = first[comp]  # smallest id of each merged group
            live = np.flatnonzero(active)
            merged_deficit = _segment_sums(new_rep[live], deficit[live], m)[0]
            merges += int(live.size - _sorted_unique(new_rep[live]).size)
            deficit[live] = 0.0
            active[live] = False
            deficit[new_rep[live]] = merged_deficit[new_rep[live]]
            active[new_rep[live]] = True
            rep = new_rep[rep]
            front_id = new_rep[front_id]

        live = np.flatnonzero(active)
        layer_sum, layer_len = _segment_sums(cand_id, r[cand_vox], m)
        if np.any(layer_len[live] == 0):
            raise FieldError(
                f"{where}: a negative cluster absorbed the whole cell with "
                f"{deficit[live].max():.3g} (sum of rho) still missing; total charge too small"
            )
        final = np.zeros(m, dtype=bool)
        final[live] = layer_sum[live] > deficit[live]
        in_final = final[cand_id]
        # last layer: spread the remnant evenly
        remnant = np.zeros(m)
        remnant[final] = (layer_sum[final] - deficit[final]) / layer_len[final]
        r[cand_vox[in_final]] = remnant[cand_id[in_final]]
        active[final] = False
        # other layers: zero them, they join the region
        peel_vox, peel_id = cand_vox[~in_final], cand_id[~in_final]
        r[peel_vox] = 0.0
        owner[peel_vox] = peel_id
        growing = live[~final[live]]
        deficit[growing] -= layer_sum[growing]
        active[growing[deficit[growing] <= 0.0]] = False  # deficit met exactly
        if not active.any():
            break
        go_on = active[peel_id]
        front_vox, front_id = peel_vox[go_on], peel_id[go_on]

    record.update(merges=merges, layer_steps=steps)
    out = r.reshape(shape)
    return field.with_rho(out, meta=dict(field.meta, remove_negative=record))
