// Minimum spanning tree of the 4-connected pixel grid (Kruskal), the tree the
// APro release builds.
//
// The release (CircleRadon/APro at 8251a9e, apro/gp_cuda/mst/mst.py:29-38 and
// boruvka.cpp) ranks an edge by the float32 sum cost + 1 and breaks ties by its
// own edge index, which numbers the vertical edges first (row-major by their
// upper pixel), then the horizontal ones. Its Boruvka takes each component's
// first cheapest edge in that index order: the MST of the total order
// (cost + 1, release index), which Kruskal finds here. Costs closer than
// float32 resolves at 1 (about 1.2e-7) tie, so the tree is unique for an input
// and equal to the release's. The rows of the result are the accepted edges in
// that order, each (u, v) with u < v.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "grid.h"

namespace apro {
namespace cpu {
namespace {

// Kruskal's joins on one image, grid edges visited in `order` (ascending
// cost); writes the accepted (u, v) rows to `out` and returns their number
// (H*W-1 when `order` lists every grid edge).
template <typename Index>
int64_t kruskal_in_order(const Index* order, const Grid& grid, int64_t* out) {
  const int64_t n = grid.num_vertices();
  if (n <= 1) return 0;
  DisjointSets sets;
  sets.reset(int32_t(n));
  int64_t accepted = 0;
  for (int64_t k = 0; k < grid.num_edges(); ++k) {
    int64_t u, v;
    grid.endpoints(int64_t(order[k]), &u, &v);
    const int32_t ru = sets.find(int32_t(u)), rv = sets.find(int32_t(v));
    if (ru == rv) continue;
    sets.unite_roots(ru, rv);
    out[2 * accepted] = u;
    out[2 * accepted + 1] = v;
    if (++accepted == n - 1) break;
  }
  return accepted;
}

// Kruskal on one image's grid-edge costs, in the release's order (see the top).
void kruskal(const float* costs, const Grid& grid, int64_t* out) {
  if (grid.num_vertices() <= 1) return;
  const int64_t num_edges = grid.num_edges(), horizontal = grid.num_horizontal();
  const int64_t vertical = num_edges - horizontal;
  // the release's edge r is this grid's edge r + horizontal (r < vertical), else r - vertical
  std::vector<float> keys(num_edges);
  for (int64_t r = 0; r < num_edges; ++r) keys[r] = costs[r < vertical ? r + horizontal : r - vertical] + 1.0f;
  std::vector<int32_t> order;
  std::vector<uint64_t> buf_a, buf_b;
  stable_argsort_nonnegative(keys.data(), int32_t(num_edges), order, buf_a, buf_b);
  for (int32_t& r : order) r = int32_t(r < vertical ? r + horizontal : r - vertical);
  kruskal_in_order(order.data(), grid, out);
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

// The host half of the device path (apro.device_ops): Kruskal's joins given
// each image's grid edges already sorted by cost on the device, (B, E) int64.
at::Tensor kruskal_from_order(const at::Tensor& order_in, int64_t height, int64_t width) {
  TORCH_CHECK_VALUE(height >= 1 && width >= 1, "kruskal_from_order: height and width must be >= 1");
  const Grid grid{height, width};
  TORCH_CHECK_VALUE(order_in.dim() == 2 && order_in.size(1) == grid.num_edges(),
                    "kruskal_from_order: order must be (B, H*(W-1) + (H-1)*W) = (B, ", grid.num_edges(), "), got ",
                    order_in.sizes());
  const at::Tensor order = order_in.to(at::kLong).contiguous();
  TORCH_CHECK_VALUE(order.numel() == 0 || (order.min().item<int64_t>() >= 0 &&
                                           order.max().item<int64_t>() < grid.num_edges()),
                    "kruskal_from_order: edge indices must lie in [0, ", grid.num_edges(), ")");
  const int64_t batch = order.size(0), n = grid.num_vertices(), num_edges = grid.num_edges();
  at::Tensor tree = at::empty({batch, std::max<int64_t>(n - 1, 0), 2}, order.options());
  const int64_t* order_ptr = order.data_ptr<int64_t>();
  int64_t* tree_ptr = tree.data_ptr<int64_t>();
  std::vector<int64_t> accepted(batch);
  at::parallel_for(0, batch, 1, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b)
      accepted[b] = kruskal_in_order(order_ptr + b * num_edges, grid, tree_ptr + b * 2 * (n - 1));
  });
  for (int64_t b = 0; b < batch; ++b)
    TORCH_CHECK_VALUE(n <= 1 || accepted[b] == n - 1, "kruskal_from_order: order[", b,
                      "] is not a permutation of the grid edges (the tree got ", accepted[b], " of ", n - 1,
                      " edges)");
  return tree;
}

}  // namespace

TORCH_LIBRARY_IMPL(apro, CPU, m) {
  m.impl("kruskal_from_order", &kruskal_from_order);
  m.impl("minimum_spanning_tree", &minimum_spanning_tree);
  m.impl("minimum_spanning_tree_from_weights", &minimum_spanning_tree_from_weights);
}

}  // namespace cpu
}  // namespace apro
