// Minimum spanning tree of the 4-connected pixel grid (Kruskal).
//
// Edges are visited by ascending cost, equal costs in grid-edge order (see
// Grid), so the tree is unique for an input. The rows of the result are the
// accepted edges in that order, each (u, v) with u < v; a GP pass guided by
// the same costs then finds its edges already sorted.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "grid.h"

namespace apro {
namespace cpu {
namespace {

// Kruskal on one image's grid-edge costs; writes H*W-1 (u, v) rows to `out`.
void kruskal(const float* costs, const Grid& grid, int64_t* out) {
  const int64_t n = grid.num_vertices();
  if (n <= 1) return;
  std::vector<int32_t> order;
  std::vector<uint64_t> buf_a, buf_b;
  stable_argsort_nonnegative(costs, int32_t(grid.num_edges()), order, buf_a, buf_b);
  DisjointSets sets;
  sets.reset(int32_t(n));
  int64_t accepted = 0;
  for (const int32_t e : order) {
    int64_t u, v;
    grid.endpoints(e, &u, &v);
    const int32_t ru = sets.find(int32_t(u)), rv = sets.find(int32_t(v));
    if (ru == rv) continue;
    sets.unite_roots(ru, rv);
    out[2 * accepted] = u;
    out[2 * accepted + 1] = v;
    if (++accepted == n - 1) break;
  }
}

at::Tensor mst_from_costs(const at::Tensor& costs, const Grid& grid) {
  const int64_t batch = costs.size(0), n = grid.num_vertices();
  at::Tensor tree = at::empty({batch, std::max<int64_t>(n - 1, 0), 2}, costs.options().dtype(at::kLong));
  const float* cost_ptr = costs.data_ptr<float>();
  int64_t* tree_ptr = tree.data_ptr<int64_t>();
  const int64_t num_edges = grid.num_edges();
  at::parallel_for(0, batch, 1, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) kruskal(cost_ptr + b * num_edges, grid, tree_ptr + b * 2 * (n - 1));
  });
  return tree;
}

at::Tensor minimum_spanning_tree(const at::Tensor& guide_in) {
  TORCH_CHECK(guide_in.dim() == 4, "minimum_spanning_tree: guide must be (B, C, H, W), got ", guide_in.sizes());
  const at::Tensor guide = guide_in.to(at::kFloat).contiguous();
  const int64_t batch = guide.size(0), channels = guide.size(1);
  const Grid grid{guide.size(2), guide.size(3)};
  const int64_t n = grid.num_vertices(), num_edges = grid.num_edges();
  at::Tensor costs = at::empty({batch, num_edges}, guide.options());
  const float* g = guide.data_ptr<float>();
  float* c = costs.data_ptr<float>();
  at::parallel_for(0, batch, 1, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) {
      for (int64_t e = 0; e < num_edges; ++e) {
        int64_t u, v;
        grid.endpoints(e, &u, &v);
        c[b * num_edges + e] = squared_distance(g + b * channels * n, channels, n, u, v);
      }
    }
  });
  return mst_from_costs(costs, grid);
}

at::Tensor minimum_spanning_tree_from_weights(const at::Tensor& weights_in, int64_t height, int64_t width) {
  TORCH_CHECK(height >= 1 && width >= 1, "minimum_spanning_tree_from_weights: height and width must be >= 1");
  const Grid grid{height, width};
  TORCH_CHECK(weights_in.dim() == 2 && weights_in.size(1) == grid.num_edges(),
              "minimum_spanning_tree_from_weights: weights must be (B, H*(W-1) + (H-1)*W) = (B, ",
              grid.num_edges(), "), got ", weights_in.sizes());
  const at::Tensor weights = weights_in.to(at::kFloat).contiguous();
  TORCH_CHECK(weights.numel() == 0 || weights.min().item<float>() >= 0.f,
              "minimum_spanning_tree_from_weights: weights must be non-negative");
  return mst_from_costs(weights, grid);
}

}  // namespace

TORCH_LIBRARY_IMPL(apro, CPU, m) {
  m.impl("minimum_spanning_tree", &minimum_spanning_tree);
  m.impl("minimum_spanning_tree_from_weights", &minimum_spanning_tree_from_weights);
}

}  // namespace cpu
}  // namespace apro
