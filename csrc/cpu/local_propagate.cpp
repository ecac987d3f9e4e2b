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

#include <cmath>
#include <cstring>

namespace apro {
namespace cpu {
namespace {

// Normalised affinities of one (C, H, W) image: out[o][y][x] for offset o.
void image_affinities(const float* image, int64_t channels, int64_t height, int64_t width, int64_t kernel,
                      double zeta, float* out) {
  const int64_t n = height * width, r = kernel / 2, kk = kernel * kernel;
  const float inv_zeta2 = float(1.0 / (zeta * zeta));
  std::vector<float> row(kk);
  for (int64_t y = 0; y < height; ++y) {
    for (int64_t x = 0; x < width; ++x) {
      const int64_t i = y * width + x;
      float sum = 0.f;
      for (int64_t o = 0; o < kk; ++o) {
        const int64_t yy = y + o / kernel - r, xx = x + o % kernel - r;
        float a = 0.f;
        if (yy >= 0 && yy < height && xx >= 0 && xx < width) {
          const int64_t j = yy * width + xx;
          float d = 0.f;
          for (int64_t c = 0; c < channels; ++c) {
            const float diff = image[c * n + i] - image[c * n + j];
            d += diff * diff;
          }
          a = std::exp(-d * inv_zeta2);
        }
        row[o] = a;
        sum += a;
      }
      for (int64_t o = 0; o < kk; ++o) out[o * n + i] = row[o] / sum;  // sum >= 1: the centre
    }
  }
}

// One output row of one plane: out[x] = mask[x] * sum_o w[o][x] * in[o][x].
// 32 columns at a time in four vector accumulators that stay in registers over
// all kernel offsets; compiled for AVX-512, AVX2 and baseline x86-64, picked at
// load time. Plain multiply-add (no FMA), so every clone rounds alike.
typedef float f32x8 __attribute__((vector_size(32)));

inline f32x8 load8(const float* p) {
  f32x8 v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

__attribute__((target_clones("avx512f", "avx2", "default")))
void propagate_row(const float* const* w, const float* const* in, const float* mask, float* out, int64_t width,
                   int64_t kk) {
  int64_t x0 = 0;
  for (; x0 + 32 <= width; x0 += 32) {
    f32x8 a0 = {}, a1 = {}, a2 = {}, a3 = {};
    for (int64_t o = 0; o < kk; ++o) {
      const float* wo = w[o] + x0;
      const float* io = in[o] + x0;
      a0 += load8(wo) * load8(io);
      a1 += load8(wo + 8) * load8(io + 8);
      a2 += load8(wo + 16) * load8(io + 16);
      a3 += load8(wo + 24) * load8(io + 24);
    }
    if (mask != nullptr) {
      a0 *= load8(mask + x0);
      a1 *= load8(mask + x0 + 8);
      a2 *= load8(mask + x0 + 16);
      a3 *= load8(mask + x0 + 24);
    }
    std::memcpy(out + x0, &a0, sizeof(a0));
    std::memcpy(out + x0 + 8, &a1, sizeof(a1));
    std::memcpy(out + x0 + 16, &a2, sizeof(a2));
    std::memcpy(out + x0 + 24, &a3, sizeof(a3));
  }
  for (; x0 < width; ++x0) {
    float acc = 0.f;
    for (int64_t o = 0; o < kk; ++o) acc += w[o][x0] * in[o][x0];
    out[x0] = mask != nullptr ? acc * mask[x0] : acc;
  }
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
    for (int64_t b = begin; b < end; ++b)
      if (used[b]) image_affinities(img + b * ci * n, ci, H, W, kernel, zeta, aff + b * kk * n);
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

  float* cur = buf_a.data();
  float* nxt = buf_b.data();
  for (int64_t it = 0; it < iterations; ++it) {
    at::parallel_for(0, H, row_grain, [&](int64_t y_begin, int64_t y_end) {
      std::vector<const float*> w(kk), in(kk);
      for (int64_t y = y_begin; y < y_end; ++y) {
        for (int64_t p = 0; p < num_planes; ++p) {
          const int64_t b = index[planes[p] / C];
          for (int64_t o = 0; o < kk; ++o) {
            w[o] = aff + (b * kk + o) * n + y * W;
            in[o] = cur + p * plane_size + (y + o / kernel) * Wp + (o % kernel);
          }
          float* dst = nxt + p * plane_size + (y + r) * Wp + r;
          propagate_row(w.data(), in.data(), mask_row(p, y), dst, W, kk);
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
