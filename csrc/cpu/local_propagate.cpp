// Local affinity propagation (LP): `iterations` rounds of a normalised
// k x k colour-affinity average, masked before and after every round.
//
// The normalised affinities are computed once per image, stored per kernel
// offset as (k*k, H, W) planes (0 where the neighbour falls off the image),
// and shared by every value map of that image. Value maps live in zero-padded
// planes, so the inner loop is a branch-free multiply-add over a row.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "grid.h"

namespace apro {
namespace cpu {
namespace {

// Affinities of one row segment for one offset: a[x] = exp(-|I_i - I_j|^2 /
// zeta^2) for the `len` pixels i = i0 + x and their neighbours j = j0 + x, and
// sum[x] += a[x]. Distances are summed channel by channel in float, as
// squared_distance does; loops over x so that they vectorise.
__attribute__((target_clones("avx2", "default")))
void affinity_segment(const float* image, int64_t channels, int64_t n, int64_t i0, int64_t j0, int64_t len,
                      float inv_zeta2, float* d, float* a, float* sum) {
  for (int64_t x = 0; x < len; ++x) d[x] = 0.f;
  for (int64_t c = 0; c < channels; ++c) {
    const float* pi = image + c * n + i0;
    const float* pj = image + c * n + j0;
    for (int64_t x = 0; x < len; ++x) {
      const float diff = pi[x] - pj[x];
      d[x] += diff * diff;
    }
  }
  for (int64_t x = 0; x < len; ++x) {
    a[x] = exp_nonpositive(-d[x] * inv_zeta2);
    sum[x] += a[x];
  }
}

// Normalised affinities of one (C, H, W) image: out[o][y][x] for offset o, 0
// where the neighbour falls off the image. Offset by offset over contiguous
// row segments; the sum over offsets runs in offset order.
void image_affinities(const float* image, int64_t channels, int64_t height, int64_t width, int64_t kernel,
                      double zeta, float* out, float* sum, float* d) {
  const int64_t n = height * width, r = kernel / 2;
  const float inv_zeta2 = float(1.0 / (zeta * zeta));
  std::fill_n(sum, n, 0.f);
  for (int64_t dy = -r; dy <= r; ++dy) {
    for (int64_t dx = -r; dx <= r; ++dx) {
      float* plane = out + ((dy + r) * kernel + (dx + r)) * n;
      const int64_t x_begin = std::max<int64_t>(0, -dx), x_end = std::min(width, width - dx);
      for (int64_t y = std::max<int64_t>(0, -dy); y < std::min(height, height - dy); ++y) {
        const int64_t i0 = y * width + x_begin;
        affinity_segment(image, channels, n, i0, i0 + dy * width + dx, x_end - x_begin, inv_zeta2, d,
                         plane + i0, sum + i0);
      }
    }
  }
  // every pixel's sum is >= 1: the centre
  for (int64_t o = 0; o < kernel * kernel; ++o)
    for (int64_t i = 0; i < n; ++i) out[o * n + i] /= sum[i];
}

// One output row of G planes of the same image, which share the affinities:
// out_g[x] = mask_g[x] * sum_o w[o][x] * in_g[x + in_offset[o]], where plane
// g's input row starts at in + g * plane_stride and its output row at
// out + g * plane_stride. A block of columns at a time with the G accumulators
// in registers: each affinity vector is loaded once for G planes. The sum runs
// over the offsets in order, plain multiply-add (no FMA), lane by lane, so the
// 16- and 8-column blocks, the last columns and every G round alike, on every
// CPU.
typedef float f32x8 __attribute__((vector_size(32)));
typedef float f32x16 __attribute__((vector_size(64)));
// GCC fuses a * b + c into an FMA where the target has one (AVX-512 here), which would round
// differently from the AVX2 and baseline code: not in the propagation. The vector helpers are
// internal and always inlined, so no vector crosses a call ABI (-Wpsabi).
#pragma GCC push_options
#pragma GCC optimize("fp-contract=off")
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"

template <typename V>
__attribute__((always_inline)) inline V load(const float* p) {
  V v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

// Columns [x0, x0 + lanes of V) of the row.
template <int G, typename V>
__attribute__((always_inline)) inline void propagate_block(const float* const* w, const float* in,
                                                           const int64_t* in_offset, const float* const* mask,
                                                           float* out, int64_t plane_stride, int64_t x0,
                                                           int64_t kk) {
  V acc[G] = {};
  for (int64_t o = 0; o < kk; ++o) {
    const V wv = load<V>(w[o] + x0);
    const float* src = in + in_offset[o] + x0;
    for (int g = 0; g < G; ++g) acc[g] += wv * load<V>(src + g * plane_stride);
  }
  for (int g = 0; g < G; ++g) {
    if (mask[g] != nullptr) acc[g] *= load<V>(mask[g] + x0);
    std::memcpy(out + g * plane_stride + x0, &acc[g], sizeof(acc[g]));
  }
}

// The last columns from x0, one at a time (the same multiply, then add, as a lane).
template <int G>
__attribute__((always_inline)) inline void propagate_tail(const float* const* w, const float* in,
                                                          const int64_t* in_offset, const float* const* mask,
                                                          float* out, int64_t plane_stride, int64_t x0,
                                                          int64_t width, int64_t kk) {
  for (; x0 < width; ++x0) {
    for (int g = 0; g < G; ++g) {
      float acc = 0.f;
      for (int64_t o = 0; o < kk; ++o) acc += w[o][x0] * in[g * plane_stride + in_offset[o] + x0];
      out[g * plane_stride + x0] = mask[g] != nullptr ? acc * mask[g][x0] : acc;
    }
  }
}

template <int G, bool Wide>
__attribute__((always_inline)) inline void propagate_rows(const float* const* w, const float* in,
                                                          const int64_t* in_offset, const float* const* mask,
                                                          float* out, int64_t plane_stride, int64_t width,
                                                          int64_t kk) {
  int64_t x0 = 0;
  if constexpr (Wide)
    for (; x0 + 16 <= width; x0 += 16) propagate_block<G, f32x16>(w, in, in_offset, mask, out, plane_stride, x0, kk);
  for (; x0 + 8 <= width; x0 += 8) propagate_block<G, f32x8>(w, in, in_offset, mask, out, plane_stride, x0, kk);
  propagate_tail<G>(w, in, in_offset, mask, out, plane_stride, x0, width, kk);
}

constexpr int kMaxPlanesPerRow = 8;

template <bool Wide>
__attribute__((always_inline)) inline void propagate_group(int group, const float* const* w, const float* in,
                                                           const int64_t* in_offset, const float* const* mask,
                                                           float* out, int64_t plane_stride, int64_t width,
                                                           int64_t kk) {
  switch (group) {
    case 1: return propagate_rows<1, Wide>(w, in, in_offset, mask, out, plane_stride, width, kk);
    case 2: return propagate_rows<2, Wide>(w, in, in_offset, mask, out, plane_stride, width, kk);
    case 3: return propagate_rows<3, Wide>(w, in, in_offset, mask, out, plane_stride, width, kk);
    case 4: return propagate_rows<4, Wide>(w, in, in_offset, mask, out, plane_stride, width, kk);
    case 5: return propagate_rows<5, Wide>(w, in, in_offset, mask, out, plane_stride, width, kk);
    case 6: return propagate_rows<6, Wide>(w, in, in_offset, mask, out, plane_stride, width, kk);
    case 7: return propagate_rows<7, Wide>(w, in, in_offset, mask, out, plane_stride, width, kk);
    default: return propagate_rows<8, Wide>(w, in, in_offset, mask, out, plane_stride, width, kk);
  }
}

// 16-column blocks where the CPU has AVX-512 (their lanes compute exactly as the 8-column ones).
__attribute__((target("avx512f"))) void propagate_row_group_avx512(
    int group, const float* const* w, const float* in, const int64_t* in_offset, const float* const* mask,
    float* out, int64_t plane_stride, int64_t width, int64_t kk) {
  propagate_group<true>(group, w, in, in_offset, mask, out, plane_stride, width, kk);
}

// 8-column blocks: the AVX2 or the baseline x86-64 build, picked at load time.
__attribute__((target_clones("avx2", "default"))) void propagate_row_group_avx2(
    int group, const float* const* w, const float* in, const int64_t* in_offset, const float* const* mask,
    float* out, int64_t plane_stride, int64_t width, int64_t kk) {
  propagate_group<false>(group, w, in, in_offset, mask, out, plane_stride, width, kk);
}
#pragma GCC diagnostic pop
#pragma GCC pop_options

// APRO_NO_AVX512=1 in the environment keeps the AVX2 code on an AVX-512 CPU (the tests compare the two).
void propagate_row_group(int group, const float* const* w, const float* in, const int64_t* in_offset,
                         const float* const* mask, float* out, int64_t plane_stride, int64_t width, int64_t kk) {
  static const bool avx512 = __builtin_cpu_supports("avx512f") && std::getenv("APRO_NO_AVX512") == nullptr;
  (avx512 ? propagate_row_group_avx512 : propagate_row_group_avx2)(group, w, in, in_offset, mask, out,
                                                                      plane_stride, width, kk);
}

at::Tensor local_propagate(const at::Tensor& image_in, const at::Tensor& values_in,
                           const std::optional<at::Tensor>& mask_in, const at::Tensor& image_index_in,
                           int64_t kernel, double zeta, int64_t iterations) {
  TORCH_CHECK(image_in.dim() == 4, "local_propagate: image must be (B, C, H, W), got ", image_in.sizes());
  TORCH_CHECK(values_in.dim() == 4, "local_propagate: values must be (K, C, H, W), got ", values_in.sizes());
  TORCH_CHECK(kernel >= 1 && kernel % 2 == 1, "local_propagate: kernel_size must be odd and >= 1, got ", kernel);
  TORCH_CHECK(zeta > 0, "local_propagate: zeta must be > 0, got ", zeta);
  TORCH_CHECK(iterations >= 0, "local_propagate: iterations must be >= 0, got ", iterations);
  const at::Tensor image = image_in.to(at::kFloat).contiguous();
  const at::Tensor values = values_in.to(at::kFloat).contiguous();
  const at::Tensor image_index = image_index_in.to(at::kLong).contiguous();
  const int64_t batch = image.size(0), ci = image.size(1), H = image.size(2), W = image.size(3);
  const int64_t K = values.size(0), C = values.size(1), n = H * W;
  TORCH_CHECK(values.size(2) == H && values.size(3) == W, "local_propagate: values are ", values.sizes(),
              " but image is ", image.sizes(), "; H and W must match");
  TORCH_CHECK(image_index.dim() == 1 && image_index.size(0) == K, "local_propagate: image_index must be (K,)");
  const int64_t* index = image_index.data_ptr<int64_t>();
  for (int64_t k = 0; k < K; ++k)
    TORCH_CHECK(index[k] >= 0 && index[k] < batch, "local_propagate: image_index[", k, "] = ", index[k],
                " is out of range [0, ", batch, ")");
  at::Tensor mask;
  if (mask_in.has_value()) {
    mask = mask_in->to(at::kFloat).contiguous();
    TORCH_CHECK(mask.dim() == 3 && mask.size(0) == K && mask.size(1) == H && mask.size(2) == W,
                "local_propagate: mask must be (K, H, W), got ", mask.sizes());
  }
  at::Tensor output = at::empty_like(values);
  if (K == 0 || n == 0) return output;

  const int64_t r = kernel / 2, kk = kernel * kernel;
  std::vector<char> used(batch, 0);
  for (int64_t k = 0; k < K; ++k) used[index[k]] = 1;
  at::Tensor affinity = at::zeros({batch, kk, H, W}, image.options());
  float* aff = affinity.data_ptr<float>();
  const float* img = image.data_ptr<float>();
  at::parallel_for(0, batch, 1, [&](int64_t begin, int64_t end) {
    const FlushDenormals flush;
    std::vector<float> sum(n), d(W);
    for (int64_t b = begin; b < end; ++b)
      if (used[b]) image_affinities(img + b * ci * n, ci, H, W, kernel, zeta, aff + b * kk * n, sum.data(), d.data());
  });

  // Planes ordered by image so that consecutive planes reuse the same affinity rows.
  std::vector<int64_t> planes;  // k * C + c
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t k = 0; k < K; ++k)
      if (index[k] == b)
        for (int64_t c = 0; c < C; ++c) planes.push_back(k * C + c);
  const int64_t num_planes = int64_t(planes.size());
  // Rows and planes per thread chunk: enough multiply-adds that a thread pays for itself.
  const int64_t row_grain = std::max<int64_t>(1, (int64_t(1) << 16) / std::max<int64_t>(1, W * num_planes * kk));
  const int64_t plane_grain = std::max<int64_t>(1, (int64_t(1) << 16) / std::max<int64_t>(1, n));
  const int64_t Hp = H + 2 * r, Wp = W + 2 * r, plane_size = Hp * Wp;
  std::vector<float> buf_a(size_t(num_planes) * plane_size, 0.f), buf_b(size_t(num_planes) * plane_size, 0.f);
  const float* x = values.data_ptr<float>();
  const float* m = mask.defined() ? mask.data_ptr<float>() : nullptr;
  auto mask_row = [&](int64_t plane, int64_t y) { return m ? m + (planes[plane] / C) * n + y * W : nullptr; };
  at::parallel_for(0, num_planes, plane_grain, [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p)
      for (int64_t y = 0; y < H; ++y) {
        const float* src = x + planes[p] * n + y * W;
        const float* mr = mask_row(p, y);
        float* dst = buf_a.data() + p * plane_size + (y + r) * Wp + r;
        for (int64_t xx = 0; xx < W; ++xx) dst[xx] = mr ? src[xx] * mr[xx] : src[xx];
      }
  });

  // Runs of at most kMaxPlanesPerRow consecutive planes of one image (they share the affinities).
  std::vector<int64_t> group_start;
  for (int64_t p = 0; p < num_planes; ++p)
    if (p == 0 || index[planes[p] / C] != index[planes[p - 1] / C] || p - group_start.back() == kMaxPlanesPerRow)
      group_start.push_back(p);
  group_start.push_back(num_planes);
  std::vector<int64_t> in_offset(kk);  // offset o's neighbour in a padded plane (no division in the loops)
  for (int64_t o = 0; o < kk; ++o) in_offset[o] = (o / kernel) * Wp + o % kernel;
  float* cur = buf_a.data();
  float* nxt = buf_b.data();
  for (int64_t it = 0; it < iterations; ++it) {
    at::parallel_for(0, H, row_grain, [&](int64_t y_begin, int64_t y_end) {
      const FlushDenormals flush;
      std::vector<const float*> w(kk);
      const float* masks[kMaxPlanesPerRow];
      for (int64_t y = y_begin; y < y_end; ++y) {
        for (size_t g = 0; g + 1 < group_start.size(); ++g) {
          const int64_t p = group_start[g], count = group_start[g + 1] - p;
          const float* w_row = aff + index[planes[p] / C] * kk * n + y * W;
          for (int64_t o = 0; o < kk; ++o) w[o] = w_row + o * n;
          for (int64_t q = 0; q < count; ++q) masks[q] = mask_row(p + q, y);
          propagate_row_group(int(count), w.data(), cur + p * plane_size + y * Wp, in_offset.data(), masks,
                              nxt + p * plane_size + (y + r) * Wp + r, plane_size, W, kk);
        }
      }
    });
    std::swap(cur, nxt);
  }

  float* y_out = output.data_ptr<float>();
  at::parallel_for(0, num_planes, plane_grain, [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p)
      for (int64_t y = 0; y < H; ++y)
        std::copy_n(cur + p * plane_size + (y + r) * Wp + r, W, y_out + planes[p] * n + y * W);
  });
  return output;
}

}  // namespace

TORCH_LIBRARY_IMPL(apro, CPU, m) { m.impl("local_propagate", &local_propagate); }

}  // namespace cpu
}  // namespace apro
