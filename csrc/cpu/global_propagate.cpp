// Global affinity propagation (GP) over a spanning tree, exact in O(N log N).
//
// y_i = sum_j S_ij x_j / sum_j S_ij with S_ij = exp(-max_{e in path(i,j)} w_e / zeta^2).
// Visiting tree edges by ascending weight (Kruskal order), the edge that joins
// two blocks A and B is the largest edge on the path of every pair (a in A,
// b in B), so the merge adds s * sum_B x to every a and s * sum_A x to every b.
// Laying the leaves out in merge order makes every block a contiguous range:
// block sums come from prefix sums, the additions go into a difference array,
// and one sequential union-find pass per weight set serves all channels that
// share it (all value maps of an image in the image-guided pass). A weight set
// that serves at most one block of channels (a self-guided map, or an image
// with a single map) needs no layout: the union-find carries the block sums
// and the additions itself (propagate_joined).
// Edges whose affinity underflows to 0 add nothing: the pass stops there. The
// normaliser is propagated alongside the values as a channel of ones.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <tuple>
#include <type_traits>

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

// How many edges (merges) ahead the loops below fetch the memory they will
// touch: their accesses are scattered, and without it each waits on a cache
// miss.
constexpr int32_t kPrefetchDistance = 8;

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
  DisjointSets uf;                 // propagate_joined's
  std::vector<int32_t> joined_to;  // propagate_joined's
  std::vector<uint64_t> sort_a, sort_b;
  std::vector<double> prefix, diff;
  std::vector<SetRecord> sets;
};

// affinity[e] = exp(-w[e] / zeta^2) for all edges, vectorised.
__attribute__((target_clones("avx2", "default")))
void edge_affinities(const float* w, int32_t num_edges, float inv_zeta2, float* affinity) {
  for (int32_t e = 0; e < num_edges; ++e) affinity[e] = exp_nonpositive(-w[e] * inv_zeta2);
}

// Edges come in weight order, so their vertices are scattered over the grid:
// the union-find loops fetch the records of the edges ahead of join k (the
// child is a set root when its edge joins; the parent is the first step of
// its find).
template <typename Index, typename Record>
inline void prefetch_join(const RootedTree& rooted, const Index* order, int32_t k, int32_t count,
                          const Record* sets) {
  if (k + 2 * kPrefetchDistance < count) {
    const int32_t ahead = int32_t(order[k + 2 * kPrefetchDistance]);
    __builtin_prefetch(&rooted.parent[ahead]);
    __builtin_prefetch(&rooted.child[ahead]);
  }
  if (k + kPrefetchDistance < count) {
    const int32_t ahead = int32_t(order[k + kPrefetchDistance]);
    __builtin_prefetch(&sets[rooted.parent[ahead]], 1);
    __builtin_prefetch(&sets[rooted.child[ahead]], 1);
  }
}

// Joins the tree edges order[0..count) in that order (ascending weight) and
// lays the leaves out so that every set ever formed is contiguous. Joining edge
// e attaches the child's set, whose root is the child itself, below its
// parent's set, so one find per edge suffices. Every set keeps its vertices as
// a linked list and a join appends the child's list, so walking the lists at
// the end gives the leaf order. Merge m of `out` is edge order[m]; its
// affinity is left to the caller.
template <typename Index>
void join_in_order(const RootedTree& rooted, int32_t n, const Index* order, int32_t count, Scratch& s,
                   MergeLayout& out) {
  s.sets.resize(n);
  for (int32_t i = 0; i < n; ++i) s.sets[i] = {-1, i, i, 1};
  s.next.assign(n, -1);
  SetRecord* sets = s.sets.data();
  // Until positions are known, start/mid hold the head vertices of the two
  // lists and end holds the child set's size.
  out.start.resize(count);
  out.mid.resize(count);
  out.end.resize(count);
  for (int32_t k = 0; k < count; ++k) {
    prefetch_join(rooted, order, k, count, sets);
    const int32_t e = int32_t(order[k]);
    int32_t r = rooted.parent[e];
    while (sets[r].parent >= 0) {  // find with path halving
      const int32_t up = sets[r].parent;
      if (sets[up].parent >= 0) sets[r].parent = sets[up].parent;
      r = sets[up].parent >= 0 ? sets[r].parent : up;
    }
    const int32_t c = rooted.child[e];
    SetRecord& top = sets[r];
    SetRecord& below = sets[c];
    out.start[k] = top.head;
    out.mid[k] = below.head;
    out.end[k] = below.size;
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
  for (int32_t m = 0; m < count; ++m) {
    out.start[m] = s.position[out.start[m]];
    out.mid[m] = s.position[out.mid[m]];
    out.end[m] += out.mid[m];
  }
}

// Sorts the edges of one weight set (`s.weights`, aligned with the rows of the
// tree) into s.order and fills s.affinity. Returns how many edges to join: the
// edges up to the first whose affinity underflows to 0 (that edge and every
// later one add nothing).
int32_t sort_and_weigh(int32_t n, double inv_zeta2, Scratch& s) {
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
  s.affinity.resize(num_edges);
  edge_affinities(w, num_edges, float(inv_zeta2), s.affinity.data());
  int32_t count = 0;
  while (count < num_edges && s.affinity[s.order[count]] != 0.f) ++count;
  return count;
}

// Builds the layout for one weight set, shared by all channels it weights.
void build_layout(const RootedTree& rooted, int32_t n, double inv_zeta2, Scratch& s, MergeLayout& out) {
  const int32_t count = sort_and_weigh(n, inv_zeta2, s);
  join_in_order(rooted, n, s.order.data(), count, s, out);
  out.affinity.resize(count);
  for (int32_t m = 0; m < count; ++m) out.affinity[m] = s.affinity[s.order[m]];
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
    if (m + kPrefetchDistance < num_merges) {  // block bounds lie anywhere in the layout
      const int32_t ahead = m + kPrefetchDistance;
      for (const int32_t at : {lay.start[ahead], lay.mid[ahead], lay.end[ahead]}) {
        __builtin_prefetch(P + size_t(at) * L);
        __builtin_prefetch(D + size_t(at) * L, 1);
      }
    }
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

// Calls fn(std::integral_constant<int, L>) with the lanes of a block of
// 1 <= nc <= kMaxChannelsPerBlock channels: 2, 4 or 8.
template <typename Fn>
void with_lanes(int nc, Fn&& fn) {
  if (nc == 1)
    fn(std::integral_constant<int, 2>{});
  else if (nc <= 3)
    fn(std::integral_constant<int, 4>{});
  else
    fn(std::integral_constant<int, 8>{});
}

void propagate_channels(const MergeLayout& lay, const float* const* in, float* const* out, int64_t count,
                        Scratch& s) {
  for (int64_t first = 0; first < count; first += kMaxChannelsPerBlock) {
    const int nc = int(std::min<int64_t>(kMaxChannelsPerBlock, count - first));
    with_lanes(nc, [&](auto lanes) { propagate_block<lanes()>(lay, in + first, out + first, nc, s); });
  }
}

// Per-vertex sums of the one-pass propagation below: at a set's root the
// set's channel sums; in every record the additions owed to all of the
// vertex's set, relative to the root it was attached to (absolute at a root).
// Lane L-1 is the normaliser.
template <int L>
struct SumRecord {
  double sum[L - 1];
  double owed[L];
};

// Propagates nc <= L-1 channels through the joins of s.order[0..count) in one
// union-find pass, without a layout: a join adds s * sum_B to all of A and
// s * sum_A to all of B, which is one addition at each set's root, and the
// child's root, attached below, keeps what it is owed relative to the root it
// joins. Summing the owed additions along the attachments (each root is
// attached later than the roots below it, so reverse join order reaches it
// first) gives every vertex its total. This is what propagate_block computes
// from a layout, for a weight set that serves one block of channels: it saves
// the layout's scattered passes (list walk, prefix sums, difference array).
// The finds run on a separate array of parents (4 bytes a vertex, which stays
// in cache); only the two roots of a join touch the sums.
template <int L>
void propagate_joined(const RootedTree& rooted, int32_t n, int32_t count, const float* const* in,
                      float* const* out, int nc, Scratch& s, std::vector<SumRecord<L>>& records) {
  records.resize(n);
  SumRecord<L>* sums = records.data();
  for (int32_t i = 0; i < n; ++i) {
    for (int c = 0; c < L - 1; ++c) sums[i].sum[c] = c < nc ? double(in[c][i]) : 0.0;
    for (int c = 0; c < L; ++c) sums[i].owed[c] = 0.0;
  }
  // A set's root is its vertex nearest the tree root, so a joining child is a
  // root; joined_to: the root that join k attached its child to.
  DisjointSets& uf = s.uf;
  uf.reset(n);
  s.joined_to.resize(count);
  int32_t* joined_to = s.joined_to.data();
  const int32_t* order = s.order.data();
  const float* affinity = s.affinity.data();
  for (int32_t k = 0; k < count; ++k) {
    prefetch_join(rooted, order, k, count, uf.parent.data());
    if (k + kPrefetchDistance < count) __builtin_prefetch(&sums[rooted.child[order[k + kPrefetchDistance]]], 1);
    const int32_t e = order[k];
    const int32_t r = uf.find(rooted.parent[e]);
    const int32_t child = rooted.child[e];
    SumRecord<L>& top = sums[r];
    SumRecord<L>& below = sums[child];
    const double a = affinity[e], top_size = uf.size(r), below_size = uf.size(child);
    for (int c = 0; c < L - 1; ++c) {
      const double to_top = a * below.sum[c], to_below = a * top.sum[c];
      top.owed[c] += to_top;
      below.owed[c] += to_below - top.owed[c];
      top.sum[c] += below.sum[c];
    }
    top.owed[L - 1] += a * below_size;
    below.owed[L - 1] += a * top_size - top.owed[L - 1];
    uf.attach(r, child);
    joined_to[k] = r;
  }
  for (int32_t k = count - 1; k >= 0; --k) {
    if (k >= kPrefetchDistance) __builtin_prefetch(&sums[rooted.child[order[k - kPrefetchDistance]]], 1);
    SumRecord<L>& rec = sums[rooted.child[order[k]]];
    const SumRecord<L>& up = sums[joined_to[k]];
    for (int c = 0; c < L; ++c) rec.owed[c] += up.owed[c];
  }
  for (int32_t i = 0; i < n; ++i) {
    const double inv_norm = 1.0 / (1.0 + sums[i].owed[L - 1]);
    for (int c = 0; c < nc; ++c) out[c][i] = float((double(in[c][i]) + sums[i].owed[c]) * inv_norm);
  }
}

// Working memory of the one-pass propagation and of a layout, per thread.
struct WeightSetState {
  Scratch scratch;
  MergeLayout layout;
  std::tuple<std::vector<SumRecord<2>>, std::vector<SumRecord<4>>, std::vector<SumRecord<8>>> records;
  std::vector<const float*> in;
  std::vector<float*> out;
};

// GP of the nc <= kMaxChannelsPerBlock channels that the weight set in
// st.scratch.weights serves, in one union-find pass.
void propagate_one_pass(const RootedTree& rooted, int32_t n, double inv_zeta2, const float* const* in,
                        float* const* out, int nc, WeightSetState& st) {
  const int32_t count = sort_and_weigh(n, inv_zeta2, st.scratch);
  with_lanes(nc, [&](auto lanes) {
    constexpr int L = lanes();
    propagate_joined<L>(rooted, n, count, in, out, nc, st.scratch, std::get<std::vector<SumRecord<L>>>(st.records));
  });
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

  // A weight set that serves one block of channels at most goes in one pass;
  // one that serves more builds a layout once for all its blocks.
  if (args.guide.defined()) {
    // Image-guided: one weight set per image, shared by all channels of its maps.
    const int64_t cg = args.guide.size(1);
    const float* g = args.guide.data_ptr<float>();
    std::vector<std::vector<const float*>> in;
    std::vector<std::vector<float*>> out;
    args.channels_by_image(in, out);
    std::vector<MergeLayout> layouts(batch);
    parallel_items<WeightSetState>(batch, 1, [&](WeightSetState& st, int64_t b) {
      if (!args.used[b]) return;
      tree_weights(args.tree_of(b), n, g + b * cg * n, cg, st.scratch.weights);
      if (in[b].size() <= size_t(kMaxChannelsPerBlock))
        propagate_one_pass(rooted[b], n, inv_zeta2, in[b].data(), out[b].data(), int(in[b].size()), st);
      else
        build_layout(rooted[b], n, inv_zeta2, st.scratch, layouts[b]);
    });
    // The channel blocks of the images with layouts, as independent tasks.
    std::vector<std::pair<int64_t, size_t>> tasks;
    for (int64_t b = 0; b < batch; ++b)
      if (in[b].size() > size_t(kMaxChannelsPerBlock))
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
    const int64_t maps_per_task = std::max<int64_t>(1, kMinPixelsPerTask / (int64_t(n) * std::max<int64_t>(C, 1)));
    parallel_items<WeightSetState>(K, maps_per_task, [&](WeightSetState& st, int64_t k) {
      tree_weights(args.tree_of(index[k]), n, args.x + k * C * n, C, st.scratch.weights);
      args.channels_of_map(k, st.in, st.out);
      if (C <= kMaxChannelsPerBlock) {
        propagate_one_pass(rooted[index[k]], n, inv_zeta2, st.in.data(), st.out.data(), int(C), st);
      } else {
        build_layout(rooted[index[k]], n, inv_zeta2, st.scratch, st.layout);
        propagate_channels(st.layout, st.in.data(), st.out.data(), C, st.scratch);
      }
    });
  }
  return args.output;
}

// The host half of the device path (apro.device_ops): the merge layouts of S
// weight sets, given each one's tree edges sorted by weight on the device,
// order (S, N-1) int64 (rows of tree[tree_index[s]]). Every edge is joined
// (the device multiplies by the affinities, zeros included). Returns leaf_at
// (S, N) and the merges' block bounds start, mid, end (S, N-1), as int64.
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> gp_layouts(const at::Tensor& order_in,
                                                                      const at::Tensor& tree_in,
                                                                      const at::Tensor& tree_index_in) {
  TORCH_CHECK_VALUE(tree_in.dim() == 3 && tree_in.size(2) == 2, "gp_layouts: tree must be (B, N-1, 2), got ",
                    tree_in.sizes());
  const at::Tensor tree = tree_in.to(at::kLong).contiguous();
  const at::Tensor order = order_in.to(at::kLong).contiguous();
  const at::Tensor tree_index = tree_index_in.to(at::kLong).contiguous();
  const int64_t batch = tree.size(0), num_edges = tree.size(1), sets = order.size(0);
  TORCH_CHECK_VALUE(num_edges + 1 < (int64_t(1) << 31), "gp_layouts: at most 2^31-1 pixels per map");
  const int32_t n = int32_t(num_edges + 1);
  TORCH_CHECK_VALUE(order.dim() == 2 && order.size(1) == num_edges, "gp_layouts: order must be (S, ", num_edges,
                    "), got ", order.sizes());
  TORCH_CHECK_VALUE(tree_index.dim() == 1 && tree_index.size(0) == sets, "gp_layouts: tree_index must be (",
                    sets, ",), got ", tree_index.sizes());
  const int64_t* index = tree_index.data_ptr<int64_t>();
  const int64_t* ord = order.data_ptr<int64_t>();
  std::vector<char> used(batch, 0);
  for (int64_t k = 0; k < sets; ++k) {
    TORCH_CHECK_VALUE(index[k] >= 0 && index[k] < batch, "gp_layouts: tree_index[", k, "] = ", index[k],
                      " is out of range [0, ", batch, ")");
    used[index[k]] = 1;
  }
  // A permutation check per set: the joins below trust it.
  for (int64_t k = 0; k < sets; ++k) {
    std::vector<char> seen(num_edges, 0);
    for (int64_t m = 0; m < num_edges; ++m) {
      const int64_t e = ord[k * num_edges + m];
      TORCH_CHECK_VALUE(e >= 0 && e < num_edges && !seen[e], "gp_layouts: order[", k,
                        "] is not a permutation of the tree's ", num_edges, " edges");
      seen[e] = 1;
    }
  }
  std::vector<RootedTree> rooted(batch);
  const int64_t* edges = tree.data_ptr<int64_t>();
  at::parallel_for(0, batch, 1, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b)
      if (used[b]) root_tree("gp_layouts", edges + b * 2 * num_edges, b, n, rooted[b]);
  });
  const auto options = tree.options();
  at::Tensor leaf_at = at::empty({sets, n}, options), start = at::empty({sets, num_edges}, options),
             mid = at::empty({sets, num_edges}, options), end = at::empty({sets, num_edges}, options);
  struct State {
    Scratch scratch;
    MergeLayout layout;
  };
  parallel_items<State>(sets, 1, [&](State& st, int64_t k) {
    join_in_order(rooted[index[k]], n, ord + k * num_edges, int32_t(num_edges), st.scratch, st.layout);
    std::copy(st.layout.leaf_at.begin(), st.layout.leaf_at.end(), leaf_at.data_ptr<int64_t>() + k * n);
    std::copy(st.layout.start.begin(), st.layout.start.end(), start.data_ptr<int64_t>() + k * num_edges);
    std::copy(st.layout.mid.begin(), st.layout.mid.end(), mid.data_ptr<int64_t>() + k * num_edges);
    std::copy(st.layout.end.begin(), st.layout.end.end(), end.data_ptr<int64_t>() + k * num_edges);
  });
  return {leaf_at, start, mid, end};
}

}  // namespace

TORCH_LIBRARY_IMPL(apro, CPU, m) {
  m.impl("global_propagate", &global_propagate);
  m.impl("gp_layouts", &gp_layouts);
}

}  // namespace cpu
}  // namespace apro
