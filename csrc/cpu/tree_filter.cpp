// Tree filter of the tree energy loss (TEL), exact in O(N) per weight set.
//
// y_i = sum_j T_ij x_j / sum_j T_ij with T_ij = prod_{e in path(i,j)} a_e,
// a_e = exp(-w_e / zeta^2) (GP takes the max edge instead of the product).
// With the tree rooted at vertex 0 (the same rooting as GP) and a_v the
// affinity of the edge from v to its parent, two sweeps give every row sum:
//   leaves to root: up_v = x_v + sum_{children c} a_c up_c   (the subtree of v)
//   root to leaves: out_v = up_v + a_v (out_parent - a_v up_v)   (the rest,
//                   reached through the parent)
// Vertices are relabelled by their breadth-first position, so both sweeps
// run over contiguous arrays and a parent always sits before its children.
// Channels are interleaved in blocks of L doubles; the last lane filters ones,
// which gives the normaliser sum_j T_ij.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <cmath>

#include "grid.h"
#include "tree.h"

namespace apro {
namespace cpu {
namespace {

// The rooted tree by breadth-first position p: the vertex there, the position
// of its parent and the row of the edge to it (both unused at the root, p = 0).
struct TreeWalk {
  std::vector<int32_t> vertex, up, edge;
};

void make_walk(const RootedTree& rooted, int32_t n, TreeWalk& walk) {
  walk.vertex = rooted.order;
  std::vector<int32_t> position(n);
  for (int32_t p = 0; p < n; ++p) position[rooted.order[p]] = p;
  walk.up.assign(n, 0);
  walk.edge.assign(n, -1);
  for (int32_t e = 0; e + 1 < n; ++e) {
    const int32_t p = position[rooted.child[e]];
    walk.up[p] = position[rooted.parent[e]];
    walk.edge[p] = e;
  }
}

// a[p] = exp(-w / zeta^2) of the edge from position p to its parent, in double.
void walk_affinities(const TreeWalk& walk, const std::vector<float>& weights, double inv_zeta2,
                     std::vector<double>& a) {
  const int32_t n = int32_t(walk.vertex.size());
  a.resize(n);
  if (n) a[0] = 0.0;
  for (int32_t p = 1; p < n; ++p) a[p] = std::exp(-double(weights[walk.edge[p]]) * inv_zeta2);
}

// Per-thread working memory, reused across tasks.
struct Scratch {
  std::vector<float> weights;
  std::vector<double> affinity, lanes;
};

// Filters nc <= L-1 channels (pointers to N floats each) over one walk.
template <int L>
void filter_block(const TreeWalk& walk, const double* a, const float* const* in, float* const* out, int nc,
                  std::vector<double>& lanes) {
  const int32_t n = int32_t(walk.vertex.size());
  const int32_t* vertex = walk.vertex.data();
  const int32_t* up = walk.up.data();
  lanes.resize(size_t(n) * L);
  double* X = lanes.data();
  for (int32_t p = 0; p < n; ++p) {
    const int32_t i = vertex[p];
    for (int c = 0; c < L; ++c) X[size_t(p) * L + c] = c < nc ? double(in[c][i]) : (c == L - 1 ? 1.0 : 0.0);
  }
  for (int32_t p = n - 1; p > 0; --p) {  // leaves to root
    const double ap = a[p];
    double* child = X + size_t(p) * L;
    double* parent = X + size_t(up[p]) * L;
    for (int c = 0; c < L; ++c) parent[c] += ap * child[c];
  }
  for (int32_t p = 1; p < n; ++p) {  // root to leaves: X[parent] is final, X[p] still the subtree sum
    const double ap = a[p];
    double* self = X + size_t(p) * L;
    const double* parent = X + size_t(up[p]) * L;
    for (int c = 0; c < L; ++c) self[c] = self[c] + ap * (parent[c] - ap * self[c]);
  }
  for (int32_t p = 0; p < n; ++p) {
    const int32_t i = vertex[p];
    const double* row = X + size_t(p) * L;
    const double inv_norm = 1.0 / row[L - 1];
    for (int c = 0; c < nc; ++c) out[c][i] = float(row[c] * inv_norm);
  }
}

// Block width: lanes for up to 7 values plus the normaliser lane.
constexpr int kMaxChannelsPerBlock = 7;

// Smallest amount of work (pixels x channels) worth a thread of its own.
constexpr int64_t kMinPixelsPerTask = 1 << 15;

void filter_channels(const TreeWalk& walk, const double* a, const float* const* in, float* const* out, int64_t count,
                     std::vector<double>& lanes) {
  for (int64_t first = 0; first < count; first += kMaxChannelsPerBlock) {
    const int nc = int(std::min<int64_t>(kMaxChannelsPerBlock, count - first));
    if (nc == 1)
      filter_block<2>(walk, a, in + first, out + first, nc, lanes);
    else if (nc <= 3)
      filter_block<4>(walk, a, in + first, out + first, nc, lanes);
    else
      filter_block<8>(walk, a, in + first, out + first, nc, lanes);
  }
}

at::Tensor tree_filter(const at::Tensor& values_in, const std::optional<at::Tensor>& guide_in,
                       const at::Tensor& tree_in, const at::Tensor& image_index_in, double zeta) {
  const TreeOpArgs args = tree_op_args("tree_filter", values_in, guide_in, tree_in, image_index_in, zeta);
  if (args.empty()) return args.output;
  const int64_t K = args.K, C = args.C, batch = args.batch;
  const int32_t n = args.n;
  const int64_t* index = args.index;
  const double inv_zeta2 = 1.0 / (zeta * zeta);
  std::vector<TreeWalk> walks(batch);
  at::parallel_for(0, batch, 1, [&](int64_t begin, int64_t end) {
    RootedTree rooted;
    for (int64_t b = begin; b < end; ++b) {
      if (!args.used[b]) continue;
      root_tree("tree_filter", args.tree_of(b), b, n, rooted);
      make_walk(rooted, n, walks[b]);
    }
  });

  if (args.guide.defined()) {
    // Image-guided: one set of affinities per image, shared by all channels of its maps.
    const int64_t cg = args.guide.size(1);
    const float* g = args.guide.data_ptr<float>();
    std::vector<std::vector<const float*>> in;
    std::vector<std::vector<float*>> out;
    args.channels_by_image(in, out);
    std::vector<std::vector<double>> affinity(batch);
    parallel_items<Scratch>(batch, 1, [&](Scratch& s, int64_t b) {
      if (!args.used[b]) return;
      tree_weights(args.tree_of(b), n, g + b * cg * n, cg, s.weights);
      walk_affinities(walks[b], s.weights, inv_zeta2, affinity[b]);
    });
    // Channel blocks of all images as independent tasks.
    std::vector<std::pair<int64_t, size_t>> tasks;
    for (int64_t b = 0; b < batch; ++b)
      for (size_t first = 0; first < in[b].size(); first += kMaxChannelsPerBlock) tasks.emplace_back(b, first);
    const int64_t min_tasks = std::max<int64_t>(1, kMinPixelsPerTask / (int64_t(n) * kMaxChannelsPerBlock));
    parallel_items<Scratch>(int64_t(tasks.size()), min_tasks, [&](Scratch& s, int64_t t) {
      const auto [b, first] = tasks[t];
      const int64_t count = std::min<int64_t>(kMaxChannelsPerBlock, int64_t(in[b].size() - first));
      filter_channels(walks[b], affinity[b].data(), in[b].data() + first, out[b].data() + first, count, s.lanes);
    });
  } else {
    // Self-guided: every value map weights its image's tree with its own channels.
    struct MapState {
      Scratch scratch;
      std::vector<const float*> in;
      std::vector<float*> out;
    };
    const int64_t maps_per_task = std::max<int64_t>(1, kMinPixelsPerTask / (int64_t(n) * std::max<int64_t>(C, 1)));
    parallel_items<MapState>(K, maps_per_task, [&](MapState& st, int64_t k) {
      tree_weights(args.tree_of(index[k]), n, args.x + k * C * n, C, st.scratch.weights);
      walk_affinities(walks[index[k]], st.scratch.weights, inv_zeta2, st.scratch.affinity);
      args.channels_of_map(k, st.in, st.out);
      filter_channels(walks[index[k]], st.scratch.affinity.data(), st.in.data(), st.out.data(), C, st.scratch.lanes);
    });
  }
  return args.output;
}

}  // namespace

TORCH_LIBRARY_IMPL(apro, CPU, m) { m.impl("tree_filter", &tree_filter); }

}  // namespace cpu
}  // namespace apro
