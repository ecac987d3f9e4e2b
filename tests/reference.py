"""Slow, obviously-correct references for the compiled APro ops.

Everything here is written straight from the definitions in DESIGN.md, in
float64 numpy / plain python (the unfold formulation of local propagation is
the original project's torch code, also in float64).  Nothing here calls
``apro``: the references must stay independent of the code under test.

Conventions shared by all functions:
- pixels are numbered row-major, ``i = y * W + x``;
- the 4-connected grid's edges are numbered horizontal first,
  ``(y, x)-(y, x+1)`` -> ``y * (W - 1) + x``, then vertical,
  ``(y, x)-(y+1, x)`` -> ``H * (W - 1) + y * W + x``.
"""
import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "grid_edges",
    "edge_costs_f32",
    "kruskal_reference",
    "kruskal_from_costs",
    "release_edge_index",
    "tree_weight",
    "scipy_mst_weight",
    "check_spanning_tree",
    "random_spanning_tree",
    "tree_path_max",
    "gp_reference",
    "lp_affinity_matrix",
    "lp_loop_reference",
    "lp_unfold_reference",
]


# --------------------------------------------------------------------------
# grid and minimum spanning tree
# --------------------------------------------------------------------------
def grid_edges(H, W):
    """All edges of the H x W 4-connected grid, (E, 2) int64, in index order."""
    edges = []
    for y in range(H):
        for x in range(W - 1):
            edges.append((y * W + x, y * W + x + 1))
    for y in range(H - 1):
        for x in range(W):
            edges.append((y * W + x, (y + 1) * W + x))
    return np.array(edges, dtype=np.int64).reshape(-1, 2)


def _as_numpy(a):
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu()
        if a.dtype in (torch.float16, torch.bfloat16):
            a = a.float()
        return a.numpy()
    return np.asarray(a)


def edge_costs_f32(guide_chw, edges):
    """Edge costs sum_c (g[c,u] - g[c,v])**2 in float32, channels summed in order 0, 1, 2, ..."""
    g = _as_numpy(guide_chw).astype(np.float32)
    C = g.shape[0]
    g = g.reshape(C, -1)
    u, v = edges[:, 0], edges[:, 1]
    cost = np.zeros(len(edges), dtype=np.float32)
    for c in range(C):
        d = (g[c, u] - g[c, v]).astype(np.float32)
        cost = (cost + (d * d).astype(np.float32)).astype(np.float32)
    return cost


def edge_costs_f64(guide_chw, edges):
    g = _as_numpy(guide_chw).astype(np.float64)
    g = g.reshape(g.shape[0], -1)
    d = g[:, edges[:, 0]] - g[:, edges[:, 1]]
    return (d * d).sum(0)


class _UnionFind:
    def __init__(self, n):
        self.parent = list(range(n))

    def find(self, a):
        root = a
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[a] != root:  # path compression, iterative
            self.parent[a], a = root, self.parent[a]
        return root

    def union(self, a, b):
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return False
        self.parent[ra] = rb
        return True


def kruskal_reference(guide_chw):
    """Kruskal on one (C, H, W) guide: (H*W-1, 2) int64 rows (u < v) in acceptance order.

    Edges are sorted as the APro release ranks them (:func:`kruskal_from_costs`).
    """
    g = _as_numpy(guide_chw)
    C, H, W = g.shape
    edges = grid_edges(H, W)
    if len(edges) == 0:
        return np.zeros((0, 2), dtype=np.int64)
    return kruskal_from_costs(edge_costs_f32(g, edges), H, W)


def release_edge_index(e, H, W):
    """The APro release's number of grid edge ``e``: it numbers the vertical edges first
    (``y * W + x`` by their upper pixel), then the horizontal ones (apro/gp_cuda/mst/mst.py:17-25)."""
    horizontal, vertical = H * (W - 1), (H - 1) * W
    return e - horizontal if e >= horizontal else e + vertical


def kruskal_from_costs(cost, H, W):
    """Kruskal on the H x W grid with given per-edge costs (grid-edge order), edges ranked as the APro
    release ranks them: by the float32 ``cost + 1`` (apro/gp_cuda/mst/mst.py:29-38), ties by the
    release's edge index (its Boruvka keeps each component's first cheapest edge)."""
    edges = grid_edges(H, W)
    cost = np.asarray(cost).reshape(-1)
    assert len(cost) == len(edges)
    if len(edges) == 0:
        return np.zeros((0, 2), dtype=np.int64)
    key = cost.astype(np.float32) + np.float32(1.0)
    order = sorted(range(len(edges)), key=lambda e: (float(key[e]), release_edge_index(e, H, W)))
    uf = _UnionFind(H * W)
    out = []
    for e in order:
        u, v = int(edges[e, 0]), int(edges[e, 1])
        if uf.union(u, v):
            out.append((u, v))
    assert len(out) == H * W - 1
    return np.array(out, dtype=np.int64).reshape(-1, 2)


def tree_weight(guide_chw, tree):
    """Total float64 cost of the tree's edges under the guide."""
    tree = _as_numpy(tree).astype(np.int64).reshape(-1, 2)
    if len(tree) == 0:
        return 0.0
    return float(edge_costs_f64(guide_chw, tree).sum())


def scipy_mst_weight(guide_chw):
    """Total weight of a minimum spanning tree from scipy (float64 costs).

    scipy treats 0 entries as missing edges, so every cost gets +1 (the MST is
    invariant to a constant offset on all edges) and the offset is removed.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import minimum_spanning_tree as sp_mst

    g = _as_numpy(guide_chw)
    C, H, W = g.shape
    N = H * W
    edges = grid_edges(H, W)
    if len(edges) == 0:
        return 0.0
    offset = 1.0
    cost = edge_costs_f64(g, edges) + offset
    G = coo_matrix((cost, (edges[:, 0], edges[:, 1])), shape=(N, N)).tocsr()
    T = sp_mst(G)
    assert T.nnz == N - 1
    return float(T.sum()) - offset * (N - 1)


def check_spanning_tree(tree, H, W):
    """Asserts that ``tree`` (H*W-1, 2) is a spanning tree of the grid (grid edges only, acyclic)."""
    tree = _as_numpy(tree)
    N = H * W
    assert tree.shape == (N - 1, 2), tree.shape
    valid = {(int(u), int(v)) for u, v in grid_edges(H, W)}
    uf = _UnionFind(N)
    for u, v in tree.tolist():
        assert 0 <= u < N and 0 <= v < N, (u, v)
        assert (min(u, v), max(u, v)) in valid, f"({u}, {v}) is not a grid edge"
        assert uf.union(u, v), f"edge ({u}, {v}) closes a cycle"
    # N-1 edges without a cycle on N vertices: connected.
    roots = {uf.find(i) for i in range(N)}
    assert len(roots) == 1


def random_spanning_tree(H, W, rng, shuffle=True, swap=False):
    """A random spanning tree of the grid (Kruskal on random weights), rows in random order.

    ``swap=True`` writes a random half of the rows as (v, u).
    """
    edges = grid_edges(H, W)
    N = H * W
    uf = _UnionFind(N)
    out = []
    for e in rng.permutation(len(edges)):
        u, v = int(edges[e, 0]), int(edges[e, 1])
        if uf.union(u, v):
            out.append((u, v))
    out = np.array(out, dtype=np.int64).reshape(-1, 2)
    if shuffle:
        out = out[rng.permutation(len(out))]
    if swap and len(out):
        flip = rng.random(len(out)) < 0.5
        out[flip] = out[flip][:, ::-1]
    return out


# --------------------------------------------------------------------------
# global propagation
# --------------------------------------------------------------------------
def tree_path_max(tree, weights, N):
    """(N, N) float64 matrix M[i, j] = max edge weight on the tree path i -> j (0 on the diagonal).

    One iterative depth-first walk over the tree from every pixel: O(N^2).
    """
    tree = _as_numpy(tree).astype(np.int64).reshape(-1, 2)
    weights = np.asarray(weights, dtype=np.float64)
    adj = [[] for _ in range(N)]
    for (u, v), w in zip(tree.tolist(), weights.tolist()):
        adj[u].append((v, w))
        adj[v].append((u, w))
    M = np.empty((N, N), dtype=np.float64)
    for s in range(N):
        pm = [None] * N
        pm[s] = 0.0
        stack = [s]
        while stack:
            a = stack.pop()
            for b, w in adj[a]:
                if pm[b] is None:
                    pm[b] = max(pm[a], w)
                    stack.append(b)
        assert all(p is not None for p in pm), "tree does not span the grid"
        M[s] = pm
    return M


def _values_kcn(values):
    v = _as_numpy(values).astype(np.float64)
    if v.ndim == 3:
        K, H, W = v.shape
        return v.reshape(K, 1, H * W), (H, W)
    if v.ndim == 4:
        K, C, H, W = v.shape
        return v.reshape(K, C, H * W), (H, W)
    raise ValueError(v.shape)


def gp_reference(values, guide, tree, zeta, image_index=None):
    """Brute-force global propagation, float64; returns an array of values' shape.

    values (K,H,W) / (K,C,H,W); guide (B,Cg,H,W) or None (self-guided by
    values[k]); tree (B, H*W-1, 2); image_index (K,) or None (identity).
    """
    shape = tuple(values.shape)
    v, (H, W) = _values_kcn(values)
    K, C, N = v.shape
    tree = _as_numpy(tree).astype(np.int64)
    if image_index is None:
        image_index = np.arange(K)
    image_index = _as_numpy(image_index).astype(np.int64)
    g = None if guide is None else _as_numpy(guide).astype(np.float64)
    out = np.empty_like(v)
    cache = {}
    for k in range(K):
        b = int(image_index[k])
        t = tree[b]
        if g is None:
            w = edge_costs_f64(v[k], t) if N > 1 else np.zeros(0)
            M = tree_path_max(t, w, N)
        else:
            if b not in cache:
                w = edge_costs_f64(g[b].reshape(g.shape[1], N), t) if N > 1 else np.zeros(0)
                cache[b] = tree_path_max(t, w, N)
            M = cache[b]
        S = np.exp(-M / float(zeta) ** 2)
        out[k] = (v[k] @ S.T) / S.sum(1)[None, :]
    return out.reshape(shape)


# --------------------------------------------------------------------------
# local propagation
# --------------------------------------------------------------------------
def lp_affinity_matrix(image_chw, kernel_size, zeta):
    """Dense (N, N) row-normalised local affinity matrix of one (C, H, W) image, float64.

    a_ij = exp(-sum_c (I[c,i] - I[c,j])**2 / zeta**2) for j in the k x k window
    centred on i, restricted to the image (centre included).
    """
    img = _as_numpy(image_chw).astype(np.float64)
    C, H, W = img.shape
    N = H * W
    r = kernel_size // 2
    A = np.zeros((N, N), dtype=np.float64)
    for y in range(H):
        for x in range(W):
            i = y * W + x
            for dy in range(-r, r + 1):
                for dx in range(-r, r + 1):
                    yy, xx = y + dy, x + dx
                    if 0 <= yy < H and 0 <= xx < W:
                        d = img[:, y, x] - img[:, yy, xx]
                        A[i, yy * W + xx] = np.exp(-float((d * d).sum()) / float(zeta) ** 2)
    return A / A.sum(1, keepdims=True)


def _mask_kn(mask, K, N):
    if mask is None:
        return np.ones((K, N), dtype=np.float64)
    m = _as_numpy(mask).astype(np.float64)
    return m.reshape(K, N)


def lp_loop_reference(image, values, mask=None, image_index=None, kernel_size=5, zeta=0.15, iterations=20):
    """Local propagation from the definition, float64: x0 = m*v; repeat x = m * (W x)."""
    shape = tuple(values.shape)
    v, (H, W) = _values_kcn(values)
    K, C, N = v.shape
    img = _as_numpy(image)
    if image_index is None:
        image_index = np.arange(K)
    image_index = _as_numpy(image_index).astype(np.int64)
    m = _mask_kn(mask, K, N)
    out = np.empty_like(v)
    cache = {}
    for k in range(K):
        b = int(image_index[k])
        if b not in cache:
            cache[b] = lp_affinity_matrix(img[b], kernel_size, zeta)
        A = cache[b]
        x = m[k][None, :] * v[k]
        for _ in range(iterations):
            x = m[k][None, :] * (x @ A.T)
        out[k] = x
    return out.reshape(shape)


def lp_unfold_reference(image_per_instance, values, mask, kernel_size, zeta, iterations):
    """The original project's unfold formulation of local propagation (torch, float64).

    image_per_instance (K, C, H, W); values (K, H, W), (K, 1, H, W) or (K, Cv, H, W)
    (channels run one after another); mask None, (K, H, W) or (K, 1, H, W).
    Returns a float64 tensor of values' shape.
    """
    img = torch.as_tensor(image_per_instance).detach().to(torch.float64)
    vals = torch.as_tensor(values).detach().to(torch.float64)
    shape = vals.shape
    if vals.dim() == 3:
        vals = vals[:, None]
    K, Cv, H, W = vals.shape
    if mask is None:
        m = torch.ones(K, H, W, dtype=torch.float64)
    else:
        m = torch.as_tensor(mask).detach().to(torch.float64).reshape(K, H, W)
    B, C = img.shape[:2]
    k = kernel_size

    img = img + 10
    unfold_img = F.unfold(img, k, padding=k // 2).reshape(B, C, k * k, H * W)
    aff = torch.exp(-((unfold_img - img.reshape(B, C, 1, H * W)) ** 2 / zeta ** 2).sum(1))

    outs = []
    for c in range(Cv):
        feat = vals[:, c] * m
        for _ in range(iterations):
            u = F.unfold(feat[:, None], k, padding=k // 2).reshape(K, k * k, H * W)
            feat = (u * aff).sum(1) / (aff.sum(1) + 1e-10)
            feat = feat.reshape(K, H, W) * m
        outs.append(feat)
    return torch.stack(outs, 1).reshape(shape)
