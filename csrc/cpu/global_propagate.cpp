// Global affinity propagation (GP) over a spanning tree, exact in O(N log N).
//
// y_i = sum_j S_ij x_j / sum_j S_ij with S_ij = exp(-max_{e in path(i,j)} w_e / zeta^2).
// Visiting tree edges by ascending weight (Kruskal order), the edge that joins
// two blocks A and B is the largest edge on the path of every pair (a in A,
// b in B), so the merge adds s * sum_B x to every a and s * sum_A x to every b.
// Laying the leaves out in merge order makes every block a contiguous range:
// block sums come from prefix sums, the additions go into a difference array,
// and one sequential union-find pass per weight set serves all channels that
// share it (all value maps of an image in the image-guided pass).
// Edges whose affinity underflows to 0 add nothing: the pass stops there. The
// normaliser is propagated alongside the values as a channel of ones.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "grid.h"
#include "tree.h"

namespace apro {
namespace cpu {
namespace {

// Positions of the leaves in merge order and, per merge, the ranges of the two
// blocks it joins ([start, mid) and [mid, end)) with their affinity.
struct MergeLayout {
  int32_t n = 0;
  std::vector<int32_t> leaf_at;  // position -> vertex
  std::vector<int32_t> start, mid, end;
  std::vector<float> affinity;
};

// Union-find record of a vertex: its parent (-1 at a set's root, which is the
// set's vertex nearest the tree root), and at a root the set's size and the
// first and last vertex of its list. One record is one memory access.
struct SetRecord {
  int32_t parent, head, tail, size;
};

// Per-thread working memory, reused across value maps.
struct Scratch {
  std::vector<float> weights, affinity;
  std::vector<int32_t> order, next, position;
  std::vector<uint64_t> sort_a, sort_b;
  std::vector<double> prefix, diff;
  std::vector<SetRecord> sets;
};

// affinity[e] = exp(-w[e] / zeta^2) for all edges, vectorised.
__attribute__((target_clones("avx2", "default")))
void edge_affinities(const float* w, int32_t num_edges, float inv_zeta2, float* affinity) {
  for (int32_t e = 0; e < num_edges; ++e) affinity[e] = exp_nonpositive(-w[e] * inv_zeta2);
}

// Builds the layout for one weight set (`s.weights`, aligned with the rows of
// the tree). Edges are joined in Kruskal order; joining edge e attaches the
// child's set, whose root is the child itself, below its parent's set, so one
// find per edge suffices. Every set keeps its vertices as a linked list and a
// join appends the child's list, so walking the lists at the end gives the
// leaf order, in which every set ever formed is contiguous.
void build_layout(const RootedTree& rooted, int32_t n, double inv_zeta2, Scratch& s, MergeLayout& out) {
  const int32_t num_edges = n - 1;
  const float* w = s.weights.data();
  bool sorted = true;
  for (int32_t e = 1; e < num_edges && sorted; ++e) sorted = w[e - 1] <= w[e];
  if (sorted) {
    s.order.resize(num_edges);
    std::iota(s.order.begin(), s.order.end(), 0);
  } else {
    stable_argsort_nonnegative(w, num_edges, s.order, s.sort_a, s.sort_b);
  }

  s.sets.resize(n);
  for (int32_t i = 0; i < n; ++i) s.sets[i] = {-1, i, i, 1};
  s.next.assign(n, -1);
  SetRecord* sets = s.sets.data();
  // Until positions are known, start/mid hold the head vertices of the two
  // lists and end holds the child set's size.
  out.start.clear();
  out.mid.clear();
  out.end.clear();
  out.affinity.clear();
  s.affinity.resize(num_edges);
  edge_affinities(w, num_edges, float(inv_zeta2), s.affinity.data());
  for (int32_t k = 0; k < num_edges; ++k) {
    const int32_t e = s.order[k];
    const float affinity = s.affinity[e];
    if (affinity == 0.f) break;  // this and every later edge adds nothing
    int32_t r = rooted.parent[e];
    while (sets[r].parent >= 0) {  // find with path halving
      const int32_t up = sets[r].parent;
      if (sets[up].parent >= 0) sets[r].parent = sets[up].parent;
      r = sets[up].parent >= 0 ? sets[r].parent : up;
    }
    const int32_t c = rooted.child[e];
    SetRecord& top = sets[r];
    SetRecord& below = sets[c];
    out.start.push_back(top.head);
    out.mid.push_back(below.head);
    out.end.push_back(below.size);
    out.affinity.push_back(affinity);
    s.next[top.tail] = below.head;
    top.tail = below.tail;
    top.size += below.size;
    below.parent = r;
  }

  out.n = n;
  out.leaf_at.resize(n);
  s.position.resize(n);
  int32_t p = 0;
  for (int32_t i = 0; i < n; ++i) {
    if (sets[i].parent >= 0) continue;  // walk each remaining set once, from its root
    for (int32_t v = sets[i].head; v >= 0; v = s.next[v]) {
      s.position[v] = p;
      out.leaf_at[p++] = v;
    }
  }
  for (size_t m = 0; m < out.affinity.size(); ++m) {
    out.start[m] = s.position[out.start[m]];
    out.mid[m] = s.position[out.mid[m]];
    out.end[m] += out.mid[m];
  }
}

// Propagates nc <= L-1 channels (pointers to N floats each) through a layout.
// Channels are interleaved so that every merge touches L adjacent doubles; the
// last lane propagates ones, which gives the normaliser sum_j S_ij.
template <int L>
void propagate_block(const MergeLayout& lay, const float* const* in, float* const* out, int nc, Scratch& s) {
  const int32_t n = lay.n;
  s.prefix.resize(size_t(n + 1) * L);
  s.diff.assign(size_t(n + 1) * L, 0.0);
  double* P = s.prefix.data();
  double* D = s.diff.data();
  for (int c = 0; c < L; ++c) P[c] = 0.0;
  for (int32_t p = 0; p < n; ++p) {
    const int32_t i = lay.leaf_at[p];
    for (int c = 0; c < L; ++c) {
      const double v = c < nc ? double(in[c][i]) : (c == L - 1 ? 1.0 : 0.0);
      P[(p + 1) * L + c] = P[p * L + c] + v;
    }
  }
  const int32_t num_merges = int32_t(lay.affinity.size());
  for (int32_t m = 0; m < num_merges; ++m) {
    const double affinity = lay.affinity[m];
    const size_t st = size_t(lay.start[m]) * L, md = size_t(lay.mid[m]) * L, en = size_t(lay.end[m]) * L;
    for (int c = 0; c < L; ++c) {
      const double a = affinity * (P[md + c] - P[st + c]);
      const double b = affinity * (P[en + c] - P[md + c]);
      D[st + c] += b;
      D[md + c] += a - b;
      D[en + c] -= a;
    }
  }
  double acc[L] = {};
  for (int32_t p = 0; p < n; ++p) {
    const int32_t i = lay.leaf_at[p];
    for (int c = 0; c < L; ++c) acc[c] += D[p * L + c];
    const double inv_norm = 1.0 / (1.0 + acc[L - 1]);
    for (int c = 0; c < nc; ++c) out[c][i] = float((P[(p + 1) * L + c] - P[p * L + c] + acc[c]) * inv_norm);
  }
}

// Smallest amount of work (pixels x channels) worth a thread of its own.
constexpr int64_t kMinPixelsPerTask = 1 << 15;

// Block width for n channels: lanes for the values plus the normaliser lane.
constexpr int kMaxChannelsPerBlock = 7;

void propagate_channels(const MergeLayout& lay, const float* const* in, float* const* out, int64_t count,
                        Scratch& s) {
  for (int64_t first = 0; first < count; first += kMaxChannelsPerBlock) {
    const int nc = int(std::min<int64_t>(kMaxChannelsPerBlock, count - first));
    if (nc == 1)
      propagate_block<2>(lay, in + first, out + first, nc, s);
    else if (nc <= 3)
      propagate_block<4>(lay, in + first, out + first, nc, s);
    else
      propagate_block<8>(lay, in + first, out + first, nc, s);
  }
}

at::Tensor global_propagate(const at::Tensor& values_in, const std::optional<at::Tensor>& guide_in,
                            const at::Tensor& tree_in, const at::Tensor& image_index_in, double zeta) {
  const TreeOpArgs args = tree_op_args("global_propagate", values_in, guide_in, tree_in, image_index_in, zeta);
  if (args.empty()) return args.output;
  const int64_t K = args.K, C = args.C, batch = args.batch;
  const int32_t n = args.n;
  const int64_t* index = args.index;
  const double inv_zeta2 = 1.0 / (zeta * zeta);
  std::vector<RootedTree> rooted(batch);
  at::parallel_for(0, batch, 1, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b)
      if (args.used[b]) root_tree("global_propagate", args.tree_of(b), b, n, rooted[b]);
  });

  if (args.guide.defined()) {
    // Image-guided: one layout per image, shared by all channels of its maps.
    const int64_t cg = args.guide.size(1);
    const float* g = args.guide.data_ptr<float>();
    std::vector<std::vector<const float*>> in;
    std::vector<std::vector<float*>> out;
    args.channels_by_image(in, out);
    std::vector<MergeLayout> layouts(batch);
    parallel_items<Scratch>(batch, 1, [&](Scratch& s, int64_t b) {
      if (!args.used[b]) return;
      tree_weights(args.tree_of(b), n, g + b * cg * n, cg, s.weights);
      build_layout(rooted[b], n, inv_zeta2, s, layouts[b]);
    });
    // Channel blocks of all images as independent tasks.
    std::vector<std::pair<int64_t, size_t>> tasks;
    for (int64_t b = 0; b < batch; ++b)
      for (size_t first = 0; first < in[b].size(); first += kMaxChannelsPerBlock) tasks.emplace_back(b, first);
    const int64_t min_tasks = std::max<int64_t>(1, kMinPixelsPerTask / (n * kMaxChannelsPerBlock));
    parallel_items<Scratch>(int64_t(tasks.size()), min_tasks, [&](Scratch& s, int64_t t) {
      const auto [b, first] = tasks[t];
      const int64_t count = std::min<int64_t>(kMaxChannelsPerBlock, int64_t(in[b].size() - first));
      propagate_channels(layouts[b], in[b].data() + first, out[b].data() + first, count, s);
    });
  } else {
    // Self-guided: every value map weights its image's tree with its own channels.
    // Small maps go in groups so that a thread gets enough work to pay for itself.
    struct MapState {
      Scratch scratch;
      MergeLayout layout;
      std::vector<const float*> in;
      std::vector<float*> out;
    };
    const int64_t maps_per_task = std::max<int64_t>(1, kMinPixelsPerTask / (int64_t(n) * std::max<int64_t>(C, 1)));
    parallel_items<MapState>(K, maps_per_task, [&](MapState& st, int64_t k) {
      tree_weights(args.tree_of(index[k]), n, args.x + k * C * n, C, st.scratch.weights);
      build_layout(rooted[index[k]], n, inv_zeta2, st.scratch, st.layout);
      args.channels_of_map(k, st.in, st.out);
      propagate_channels(st.layout, st.in.data(), st.out.data(), C, st.scratch);
    });
  }
  return args.output;
}

}  // namespace

TORCH_LIBRARY_IMPL(apro, CPU, m) { m.impl("global_propagate", &global_propagate); }

}  // namespace cpu
}  // namespace apro
