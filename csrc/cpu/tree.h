// Spanning-tree helpers shared by the tree ops (global_propagate,
// tree_filter): their argument checks and tensor views (TreeOpArgs), rooting a
// (N-1, 2) edge list, which also validates it, and the edge weights of a tree
// from a guide map.
#pragma once

#include <ATen/ATen.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include "grid.h"

namespace apro {
namespace cpu {

// The arguments of a tree op, checked and converted: values (K, C, H, W) and
// the guide (B, Cg, H, W; undefined when self-guided) as contiguous float,
// tree (B, N-1, 2) and image_index (K,) as contiguous int64, with N = H*W,
// and the output, allocated like values. `op` names the op in the messages.
struct TreeOpArgs {
  at::Tensor values, guide, tree, image_index, output;
  int64_t K = 0, C = 0, batch = 0;
  int32_t n = 0;
  const float* x = nullptr;        // values
  float* y = nullptr;              // output
  const int64_t* index = nullptr;  // image of each value map
  const int64_t* edges = nullptr;  // tree
  std::vector<char> used;          // used[b]: image b has value maps

  // Nothing to compute: no value maps, or maps without pixels.
  bool empty() const { return K == 0 || n == 0; }
  // The (N-1, 2) edge list of image b.
  const int64_t* tree_of(int64_t b) const { return edges + b * 2 * int64_t(n - 1); }
  // Per image, the input and output pointers of the channels of all its value
  // maps, maps in order of k, channels in order within a map.
  void channels_by_image(std::vector<std::vector<const float*>>& in, std::vector<std::vector<float*>>& out) const {
    in.assign(batch, {});
    out.assign(batch, {});
    for (int64_t k = 0; k < K; ++k)
      for (int64_t c = 0; c < C; ++c) {
        in[index[k]].push_back(x + (k * C + c) * n);
        out[index[k]].push_back(y + (k * C + c) * n);
      }
  }
  // The C input and output channel pointers of value map k.
  void channels_of_map(int64_t k, std::vector<const float*>& in, std::vector<float*>& out) const {
    in.resize(C);
    out.resize(C);
    for (int64_t c = 0; c < C; ++c) {
      in[c] = x + (k * C + c) * n;
      out[c] = y + (k * C + c) * n;
    }
  }
};

inline TreeOpArgs tree_op_args(const char* op, const at::Tensor& values_in, const std::optional<at::Tensor>& guide_in,
                               const at::Tensor& tree_in, const at::Tensor& image_index_in, double zeta) {
  TORCH_CHECK_VALUE(values_in.dim() == 4, op, ": values must be (K, C, H, W), got ", values_in.sizes());
  TORCH_CHECK_VALUE(tree_in.dim() == 3 && tree_in.size(2) == 2, op, ": tree must be (B, H*W-1, 2), got ",
                    tree_in.sizes());
  TORCH_CHECK_VALUE(zeta > 0, op, ": zeta must be > 0, got ", zeta);
  TreeOpArgs a;
  a.values = values_in.to(at::kFloat).contiguous();
  a.tree = tree_in.to(at::kLong).contiguous();
  a.image_index = image_index_in.to(at::kLong).contiguous();
  a.K = a.values.size(0);
  a.C = a.values.size(1);
  a.batch = a.tree.size(0);
  const int64_t n64 = a.values.size(2) * a.values.size(3);
  TORCH_CHECK_VALUE(n64 < (int64_t(1) << 31), op, ": at most 2^31-1 pixels per map");
  a.n = int32_t(n64);
  TORCH_CHECK_VALUE(a.n == 0 || a.tree.size(1) == a.n - 1, op, ": tree has ", a.tree.size(1),
                    " edges per image, expected H*W-1 = ", a.n - 1);
  TORCH_CHECK_VALUE(a.image_index.dim() == 1 && a.image_index.size(0) == a.K, op, ": image_index must be (K,)");
  a.index = a.image_index.data_ptr<int64_t>();
  for (int64_t k = 0; k < a.K; ++k)
    TORCH_CHECK_VALUE(a.index[k] >= 0 && a.index[k] < a.batch, op, ": image_index[", k, "] = ", a.index[k],
                      " is out of range [0, ", a.batch, ")");
  if (guide_in.has_value()) {
    a.guide = guide_in->to(at::kFloat).contiguous();
    TORCH_CHECK_VALUE(a.guide.dim() == 4 && a.guide.size(0) == a.batch && a.guide.size(2) * a.guide.size(3) == a.n,
                      op, ": guide must be (B, Cg, H, W) matching tree and values, got ", a.guide.sizes());
  }
  a.output = at::empty_like(a.values);
  a.x = a.values.data_ptr<float>();
  a.y = a.output.data_ptr<float>();
  a.edges = a.tree.data_ptr<int64_t>();
  a.used.assign(a.batch, 0);
  for (int64_t k = 0; k < a.K; ++k) a.used[a.index[k]] = 1;
  return a;
}

// The tree rooted at vertex 0: edge e joins child[e] to its parent parent[e];
// order lists the vertices breadth-first from vertex 0 (every vertex after its
// parent), neighbours in the order of the edge rows. Built once per image and
// shared by all weight sets on that tree.
struct RootedTree {
  std::vector<int32_t> child, parent, order;
};

// Orients the rows of `tree` by a breadth-first search from vertex 0, which
// also checks that they form a spanning tree (N-1 edges reaching every vertex).
// `op` names the op in the error messages.
inline void root_tree(const char* op, const int64_t* tree, int64_t image, int32_t n, RootedTree& out) {
  const int32_t num_edges = n - 1;
  std::vector<int32_t> degree_start(n + 1, 0), incident(2 * size_t(std::max(num_edges, 0)));
  for (int32_t e = 0; e < num_edges; ++e) {
    const int64_t u = tree[2 * int64_t(e)], v = tree[2 * int64_t(e) + 1];
    TORCH_CHECK_VALUE(u >= 0 && u < n && v >= 0 && v < n, op, ": tree[", image,
                      "] has a vertex index out of range [0, ", n, "): (", u, ", ", v, ")");
    ++degree_start[u + 1];
    ++degree_start[v + 1];
  }
  for (int32_t i = 0; i < n; ++i) degree_start[i + 1] += degree_start[i];
  std::vector<int32_t> fill(degree_start.begin(), degree_start.end() - 1);
  for (int32_t e = 0; e < num_edges; ++e) {
    incident[fill[tree[2 * int64_t(e)]]++] = e;
    incident[fill[tree[2 * int64_t(e) + 1]]++] = e;
  }
  out.child.assign(std::max(num_edges, 0), -1);
  out.parent.assign(std::max(num_edges, 0), -1);
  std::vector<int32_t>& queue = out.order;
  queue.clear();
  queue.reserve(n);
  std::vector<char> seen(n, 0);
  if (n == 0) return;
  queue.push_back(0);
  seen[0] = 1;
  for (size_t head = 0; head < queue.size(); ++head) {
    const int32_t u = queue[head];
    for (int32_t k = degree_start[u]; k < degree_start[u + 1]; ++k) {
      const int32_t e = incident[k];
      const int32_t v = int32_t(tree[2 * int64_t(e)] == u ? tree[2 * int64_t(e) + 1] : tree[2 * int64_t(e)]);
      if (seen[v]) {
        TORCH_CHECK_VALUE(out.child[e] == u, op, ": tree[", image, "] is not a spanning tree: edge (",
                          tree[2 * int64_t(e)], ", ", tree[2 * int64_t(e) + 1], ") closes a cycle");
        continue;
      }
      seen[v] = 1;
      out.child[e] = v;
      out.parent[e] = u;
      queue.push_back(v);
    }
  }
  TORCH_CHECK_VALUE(int32_t(queue.size()) == n, op, ": tree[", image, "] is not a spanning tree: it reaches ",
                    queue.size(), " of ", n, " vertices from vertex 0");
}

// Edge weights of one tree from a (C, N) map (indices checked by root_tree).
inline void tree_weights(const int64_t* tree, int32_t n, const float* data, int64_t channels,
                         std::vector<float>& weights) {
  weights.resize(std::max(n - 1, 0));
  for (int32_t e = 0; e + 1 < n; ++e)
    weights[e] = squared_distance(data, channels, n, tree[2 * int64_t(e)], tree[2 * int64_t(e) + 1]);
}

}  // namespace cpu
}  // namespace apro
