"""Connected components of an edge list on Ray Data: Large-Star / Small-Star.

Ray Data has joins and group-bys but no graph algorithms, so this is written here:
the alternating Large-Star and Small-Star steps of Kiveris et al., "Connected
Components in Map Reduce and Beyond" (SoCC 2014), each one hash-partitioned group-by.
It converges in O(log^2 n) rounds to one star per component whose centre is the
component's smallest node id; only a count of changed edges per round reaches the
driver. Every edge is kept oriented ``(x, y)`` with ``y < x``.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pyarrow as pa

from lmops.data.cluster_dedup import partition_of

EDGES = pa.schema([("x", pa.int64()), ("y", pa.int64())])
_KEYED = pa.schema([("part", pa.int64()), ("u", pa.int64()), ("v", pa.int64())])
_OUT = pa.schema([("x", pa.int64()), ("y", pa.int64()), ("changed", pa.int64())])
MAX_ROUNDS = 64  # a safety stop: O(log^2 n) rounds are expected


def _keyed(u: np.ndarray, v: np.ndarray, partitions: int) -> pa.Table:
    return pa.table(
        {"part": partition_of(u.view(np.uint64), partitions), "u": u, "v": v}, schema=_KEYED
    )


def both_ways(batch: pa.Table, partitions: int) -> pa.Table:
    """Large-Star's map: every edge under both of its ends."""
    x, y = batch.column("x").to_numpy(), batch.column("y").to_numpy()
    return _keyed(np.concatenate([x, y]), np.concatenate([y, x]), partitions)


def under_larger(batch: pa.Table, partitions: int) -> pa.Table:
    """Small-Star's map: every edge under its larger end (edges are kept ``y < x``)."""
    return _keyed(batch.column("x").to_numpy(), batch.column("y").to_numpy(), partitions)


def _adjacency(part: pa.Table) -> dict[int, set[int]]:
    adj: dict[int, set[int]] = defaultdict(set)
    for u, v in zip(part.column("u").to_pylist(), part.column("v").to_pylist(), strict=True):
        adj[u].add(v)
    return adj


def _out(rows: list[tuple[int, int, int]]) -> pa.Table:
    if not rows:
        return _OUT.empty_table()
    x, y, c = zip(*rows, strict=True)
    return pa.table({"x": x, "y": y, "changed": c}, schema=_OUT)


def large_star(part: pa.Table) -> pa.Table:
    """Each node's larger neighbours are linked to the smallest node of its neighbourhood."""
    rows = []
    for u, nbrs in _adjacency(part).items():
        m = min(min(nbrs), u)
        rows.extend((v, m, int(m != u)) for v in nbrs if v > u)
    return _out(rows)


def small_star(part: pa.Table) -> pa.Table:
    """A node and its smaller neighbours are linked to the smallest of them."""
    rows = []
    for u, nbrs in _adjacency(part).items():
        m = min(nbrs)  # every neighbour here is smaller than u
        rows.append((u, m, 0))
        rows.extend((v, m, 1) for v in nbrs if v != m)
    return _out(rows)


def _step(edges, mapper, reducer, partitions: int):
    out = (
        edges.map_batches(mapper, fn_kwargs={"partitions": partitions}, batch_format="pyarrow")
        .groupby("part", num_partitions=partitions)
        .map_groups(reducer, batch_format="pyarrow")
        .materialize()
    )
    changed = out.sum("changed") or 0 if out.count() else 0
    return out.select_columns(["x", "y"]), int(changed)


def connected_components(edges, partitions: int):
    """``edges`` (a Ray Dataset of ``x``, ``y``) as (node, root) rows, one per non-root node.

    A node that appears in no row is the root (smallest id) of its own component.
    """
    for _ in range(MAX_ROUNDS):
        edges, large = _step(edges, both_ways, large_star, partitions)
        edges, small = _step(edges, under_larger, small_star, partitions)
        if large == 0 and small == 0:
            return edges
    raise RuntimeError(f"connected components did not converge in {MAX_ROUNDS} rounds")
