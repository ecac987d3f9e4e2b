// Helpers shared by the CPU kernels: edge costs, a stable radix sort of
// non-negative float keys, and union-find.
#pragma once

#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <vector>

#if defined(__SSE__)
#include <xmmintrin.h>
#endif

namespace apro {
namespace cpu {

// Squared L2 distance between vertices u and v of a (C, N) channel-major map.
// Summed in float, channel by channel, so every op sees the same bits.
inline float squared_distance(const float* data, int64_t channels, int64_t n, int64_t u, int64_t v) {
  float d = 0.f;
  for (int64_t c = 0; c < channels; ++c) {
    const float diff = data[c * n + u] - data[c * n + v];
    d += diff * diff;
  }
  return d;
}

// exp(x) for x <= 0 in a branch-free form the compiler vectorises:
// x = n*ln2 + r with |r| <= ln2/2, a degree-6 Taylor polynomial for e^r
// (relative error < 3e-7) and 2^n from the exponent bits; 0 once 2^n drops
// below the smallest normal float.
inline float exp_nonpositive(float x) {
  x = x < -100.f ? -100.f : x;                                 // keeps n in int range
  const int32_t n = int32_t(x * 1.44269504088896341f - 0.5f);  // round(x / ln2), x <= 0
  const float nf = float(n);
  const float r = (x - nf * 0.693145751953125f) - nf * 1.428606765330187045e-06f;
  float p = 1.f / 720;
  p = p * r + 1.f / 120;
  p = p * r + 1.f / 24;
  p = p * r + 1.f / 6;
  p = p * r + 0.5f;
  p = p * r + 1.f;
  p = p * r + 1.f;
  const int32_t biased = n + 127;
  const int32_t bits = (biased > 0 ? biased : 0) << 23;  // 2^n, or 0.0 below the normal range
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return p * scale;
}

// While alive, the calling thread flushes denormal floats (below 1.2e-38) to
// zero, as inputs and as results (SSE's FTZ and DAZ), and restores its mode on
// exit. Affinity products underflow all the time, and every operation on a
// denormal costs a microcode assist on many x86 CPUs (LP ran 1.4x slower with
// them on an AVX2 EPYC); their share of a normalised average is far below float
// resolution. Construct one inside each at::parallel_for body: the mode is per
// thread.
struct FlushDenormals {
#if defined(__SSE__)
  FlushDenormals() : saved_(_mm_getcsr()) { _mm_setcsr(saved_ | 0x8040u); }  // FTZ (bit 15) | DAZ (bit 6)
  ~FlushDenormals() { _mm_setcsr(saved_); }
#else
  FlushDenormals() = default;
#endif
  FlushDenormals(const FlushDenormals&) = delete;
  FlushDenormals& operator=(const FlushDenormals&) = delete;

 private:
#if defined(__SSE__)
  unsigned int saved_;
#endif
};

// Edges of the 4-connected H x W grid: horizontal edges (y,x)-(y,x+1) first,
// numbered y*(W-1)+x, then vertical edges (y,x)-(y+1,x), numbered
// H*(W-1)+y*W+x (the spanning tree breaks ties in the release's numbering,
// minimum_spanning_tree.cpp).
struct Grid {
  int64_t height, width;
  int64_t num_vertices() const { return height * width; }
  int64_t num_horizontal() const { return height * (width - 1); }
  int64_t num_edges() const { return num_horizontal() + (height - 1) * width; }
  void endpoints(int64_t e, int64_t* u, int64_t* v) const {
    if (e < num_horizontal()) {
      const int64_t y = e / (width - 1), x = e % (width - 1);
      *u = y * width + x;
      *v = *u + 1;
    } else {
      *u = e - num_horizontal();
      *v = *u + width;
    }
  }
};

// Returns the indices 0..n-1 ordered by ascending key, equal keys in index
// order. Keys must be non-negative floats (not NaN): their bit patterns then
// order like the values, so an LSD radix sort on 3 digits of 11 bits sorts
// them, and LSD radix sort is stable.
inline void stable_argsort_nonnegative(const float* keys, int32_t n, std::vector<int32_t>& order,
                                       std::vector<uint64_t>& buf_a, std::vector<uint64_t>& buf_b) {
  order.resize(n);
  if (n < 64) {
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [keys](int32_t a, int32_t b) { return keys[a] < keys[b]; });
    return;
  }
  constexpr int kBits = 11, kBuckets = 1 << kBits, kPasses = 3;
  buf_a.resize(n);
  buf_b.resize(n);
  uint32_t hist[kPasses][kBuckets];
  std::memset(hist, 0, sizeof(hist));
  for (int32_t i = 0; i < n; ++i) {
    uint32_t bits;
    std::memcpy(&bits, keys + i, sizeof(bits));
    if (bits == 0x80000000u) bits = 0;  // -0.0 sorts as +0.0
    buf_a[i] = (uint64_t(bits) << 32) | uint32_t(i);
    for (int p = 0; p < kPasses; ++p) ++hist[p][(bits >> (p * kBits)) & (kBuckets - 1)];
  }
  uint64_t* src = buf_a.data();
  uint64_t* dst = buf_b.data();
  for (int p = 0; p < kPasses; ++p) {
    uint32_t* h = hist[p];
    const uint32_t first = (uint32_t(src[0] >> 32) >> (p * kBits)) & (kBuckets - 1);
    if (h[first] == uint32_t(n)) continue;  // every key has this digit: nothing moves
    uint32_t sum = 0;
    for (int b = 0; b < kBuckets; ++b) {
      const uint32_t c = h[b];
      h[b] = sum;
      sum += c;
    }
    const int shift = 32 + p * kBits;
    for (int32_t i = 0; i < n; ++i) {
      const uint64_t item = src[i];
      dst[h[(item >> shift) & (kBuckets - 1)]++] = item;
    }
    std::swap(src, dst);
  }
  for (int32_t i = 0; i < n; ++i) order[i] = int32_t(src[i] & 0xffffffffu);
}

// Union-find with union by size and path halving in one array: a root holds
// minus its set size, any other vertex its parent (one cache line per step).
struct DisjointSets {
  std::vector<int32_t> parent;
  void reset(int32_t n) { parent.assign(n, -1); }
  int32_t find(int32_t x) {
    while (parent[x] >= 0) {
      const int32_t up = parent[x];
      if (parent[up] >= 0) parent[x] = parent[up];
      x = parent[x] >= 0 ? parent[x] : up;
    }
    return x;
  }
  int32_t size(int32_t root) const { return -parent[root]; }
  // Attaches the set of root `below` under root `top`, whatever their sizes.
  void attach(int32_t top, int32_t below) {
    parent[top] += parent[below];
    parent[below] = top;
  }
  // Joins the sets of roots a and b; returns the new root.
  int32_t unite_roots(int32_t a, int32_t b) {
    if (parent[a] > parent[b]) std::swap(a, b);  // a is the larger set
    parent[a] += parent[b];
    parent[b] = a;
    return a;
  }
};

// Runs fn(state, i) for i in [0, n) on torch's threads, each thread with its
// own State. Items are handed out one at a time, so a thread slowed down by
// other work on the machine does not hold the others back the way a static
// split does. At most n / min_items threads take part.
template <typename State, typename Fn>
void parallel_items(int64_t n, int64_t min_items, Fn&& fn) {
  const int64_t workers = std::min<int64_t>(at::get_num_threads(), std::max<int64_t>(1, n / std::max<int64_t>(1, min_items)));
  std::atomic<int64_t> next{0};
  at::parallel_for(0, workers, 1, [&](int64_t, int64_t) {
    State state;
    for (int64_t i = next++; i < n; i = next++) fn(state, i);
  });
}

}  // namespace cpu
}  // namespace apro
