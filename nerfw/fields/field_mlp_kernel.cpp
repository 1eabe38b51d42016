// The grid field's MLPs for inference on the CPU, fused per sample: density MLP -> (sigma, features) -> colour
// head -> rgb, without writing any hidden activation to memory (nerfw/fields/fused_mlp.py explains when it runs).
//
// The PyTorch path runs each Linear over a whole chunk of samples ([57344, 64] activations, 15 MB each), then the
// bias, ReLU and conditioning passes over the same memory. Here every sample goes through all layers while its
// activations stay in registers and L1: a layer of W outputs keeps W / 8 AVX2 accumulators, and each input adds one
// broadcast times a row of the transposed weight, [in, out] (one 8-float load per FMA, both from L1).
//
// Layers: density  Linear(E, H) ReLU ... Linear(H, 1 + G): sigma = softplus(out[0] + density_bias), features
//         out[1:]; colour  first Linear(G, C) + the ray's condition (its appearance code and encoded direction
//         through the first layer's conditioning weight, computed per ray by the caller), ReLU, (Linear(C, C)
//         ReLU)*, Linear(C, 3), sigmoid.

#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define NERFW_AVX2 1
#endif

namespace {

constexpr int kMaxWidth = 256;  // widest layer the kernel takes (the defaults use 64)

struct Layer {
  const float* wt;  // [in, out] row-major (the Linear's weight transposed)
  const float* bias;  // [out] or nullptr
  int in, out;
};

// y[o] = bias[o] + sum_i x[i] wt[i, o], for a fixed out (multiple of 8): accumulators stay in registers.
#ifdef NERFW_AVX2
template <int kOut>
inline void dense_fixed(const float* __restrict x, const Layer& l, float* __restrict y) {
  constexpr int kRegs = kOut / 8;
  __m256 acc[kRegs];
  for (int k = 0; k < kRegs; ++k) acc[k] = l.bias ? _mm256_loadu_ps(l.bias + 8 * k) : _mm256_setzero_ps();
  const float* w = l.wt;
  for (int i = 0; i < l.in; ++i, w += kOut) {
    const __m256 xi = _mm256_set1_ps(x[i]);
    for (int k = 0; k < kRegs; ++k) acc[k] = _mm256_fmadd_ps(_mm256_loadu_ps(w + 8 * k), xi, acc[k]);
  }
  for (int k = 0; k < kRegs; ++k) _mm256_storeu_ps(y + 8 * k, acc[k]);
}
#endif

inline void dense_generic(const float* __restrict x, const Layer& l, float* __restrict y) {
  for (int o = 0; o < l.out; ++o) y[o] = l.bias ? l.bias[o] : 0.0f;
  const float* w = l.wt;
  for (int i = 0; i < l.in; ++i, w += l.out) {
    const float xi = x[i];
#pragma omp simd
    for (int o = 0; o < l.out; ++o) y[o] += w[o] * xi;
  }
}

inline void dense(const float* x, const Layer& l, float* y) {
#ifdef NERFW_AVX2
  switch (l.out) {
    case 8: return dense_fixed<8>(x, l, y);
    case 16: return dense_fixed<16>(x, l, y);
    case 32: return dense_fixed<32>(x, l, y);
    case 64: return dense_fixed<64>(x, l, y);
    case 128: return dense_fixed<128>(x, l, y);
    default: break;
  }
#endif
  dense_generic(x, l, y);
}

inline void relu(float* y, int n) {
#pragma omp simd
  for (int o = 0; o < n; ++o) y[o] = y[o] > 0.0f ? y[o] : 0.0f;
}

// torch.nn.functional.softplus with beta 1 and threshold 20.
inline float softplus(float v) { return v > 20.0f ? v : std::log1p(std::exp(v)); }
inline float sigmoid(float v) { return 1.0f / (1.0f + std::exp(-v)); }

std::vector<Layer> as_layers(const std::vector<torch::Tensor>& wts, const std::vector<torch::Tensor>& biases) {
  TORCH_CHECK(!wts.empty() && wts.size() == biases.size(), "field_mlp: one bias per weight");
  std::vector<Layer> layers;
  for (size_t k = 0; k < wts.size(); ++k) {
    const auto& w = wts[k];
    TORCH_CHECK(w.dim() == 2 && w.is_contiguous() && w.scalar_type() == torch::kFloat32 && w.device().is_cpu(),
                "field_mlp: weights must be contiguous float32 CPU tensors [in, out]");
    TORCH_CHECK(w.size(0) <= kMaxWidth && w.size(1) <= kMaxWidth, "field_mlp: a layer wider than 256");
    const auto& b = biases[k];
    const bool has_bias = b.numel() > 0;
    TORCH_CHECK(!has_bias || (b.numel() == w.size(1) && b.is_contiguous() && b.scalar_type() == torch::kFloat32),
                "field_mlp: a bias must match its layer's outputs");
    if (k > 0) TORCH_CHECK(w.size(0) == wts[k - 1].size(1), "field_mlp: layer sizes do not chain");
    layers.push_back({w.data_ptr<float>(), has_bias ? b.data_ptr<float>() : nullptr, static_cast<int>(w.size(0)),
                      static_cast<int>(w.size(1))});
  }
  return layers;
}

// Samples go through the layers in blocks of kBlock: a layer's weights are read from L1 by every sample of the
// block (the field's weights, 33 KB in all, do not fit L1 together; one layer's do), and narrow layers (fewer
// than 32 outputs) take 4 samples at a time so that their few accumulators do not wait on each other's FMAs.
constexpr int kBlock = 32;

#ifdef NERFW_AVX2
// Four samples through one layer of kOut (8 or 16) outputs: 4 * kOut / 8 independent accumulators.
template <int kOut>
inline void dense4_fixed(const float* x, int64_t x_stride, const Layer& l, float* y, int64_t y_stride) {
  constexpr int kRegs = kOut / 8;
  __m256 acc[4][kRegs];
  for (int p = 0; p < 4; ++p)
    for (int k = 0; k < kRegs; ++k) acc[p][k] = l.bias ? _mm256_loadu_ps(l.bias + 8 * k) : _mm256_setzero_ps();
  const float* w = l.wt;
  for (int i = 0; i < l.in; ++i, w += kOut) {
    __m256 wk[kRegs];
    for (int k = 0; k < kRegs; ++k) wk[k] = _mm256_loadu_ps(w + 8 * k);
    for (int p = 0; p < 4; ++p) {
      const __m256 xi = _mm256_set1_ps(x[p * x_stride + i]);
      for (int k = 0; k < kRegs; ++k) acc[p][k] = _mm256_fmadd_ps(wk[k], xi, acc[p][k]);
    }
  }
  for (int p = 0; p < 4; ++p)
    for (int k = 0; k < kRegs; ++k) _mm256_storeu_ps(y + p * y_stride + 8 * k, acc[p][k]);
}
#endif

// One layer over n samples (rows of x and y, kMaxWidth apart).
inline void dense_block(const float* x, const Layer& l, float* y, int n) {
  int p = 0;
#ifdef NERFW_AVX2
  if (l.out == 8 || l.out == 16) {
    for (; p + 4 <= n; p += 4) {
      if (l.out == 8) dense4_fixed<8>(x + p * kMaxWidth, kMaxWidth, l, y + p * kMaxWidth, kMaxWidth);
      else dense4_fixed<16>(x + p * kMaxWidth, kMaxWidth, l, y + p * kMaxWidth, kMaxWidth);
    }
  }
#endif
  for (; p < n; ++p) dense(x + p * kMaxWidth, l, y + p * kMaxWidth);
}

inline void relu_block(float* y, int width, int n) {
  for (int p = 0; p < n; ++p) relu(y + p * kMaxWidth, width);
}

// A layer with fewer than 8 outputs (the colour head's last, 3): dot products along the inputs.
inline void dense_narrow_block(const float* x, const Layer& l, const float* w_rows, float* y, int n) {
  for (int p = 0; p < n; ++p) {
    const float* xp = x + p * kMaxWidth;
    for (int o = 0; o < l.out; ++o) {
      const float* w = w_rows + o * l.in;
      float acc = l.bias ? l.bias[o] : 0.0f;
#pragma omp simd reduction(+ : acc)
      for (int i = 0; i < l.in; ++i) acc += w[i] * xp[i];
      y[p * kMaxWidth + o] = acc;
    }
  }
}

}  // namespace

// enc [M, E] plane features of M = R * S samples (S consecutive samples per ray), cond [R, C] each ray's
// conditioning already through the colour head's first conditioning weight. Returns sigma [M] and rgb [M, 3].
std::vector<torch::Tensor> field_mlp_forward(const torch::Tensor& enc, const torch::Tensor& cond, int64_t samples,
                                             const std::vector<torch::Tensor>& density_wts,
                                             const std::vector<torch::Tensor>& density_biases,
                                             const std::vector<torch::Tensor>& colour_wts,
                                             const std::vector<torch::Tensor>& colour_biases, double density_bias) {
  TORCH_CHECK(enc.dim() == 2 && enc.is_contiguous() && enc.scalar_type() == torch::kFloat32 && enc.device().is_cpu(),
              "field_mlp: features must be a contiguous float32 CPU tensor [M, E]");
  TORCH_CHECK(cond.dim() == 2 && cond.is_contiguous() && cond.scalar_type() == torch::kFloat32,
              "field_mlp: the condition must be a contiguous float32 tensor [R, C]");
  const std::vector<Layer> dens = as_layers(density_wts, density_biases);
  const std::vector<Layer> col = as_layers(colour_wts, colour_biases);
  const int64_t M = enc.size(0);
  TORCH_CHECK(samples > 0 && M == cond.size(0) * samples, "field_mlp: features are not rays x samples");
  TORCH_CHECK(dens.front().in == enc.size(1), "field_mlp: the features do not fit the density MLP");
  TORCH_CHECK(col.front().in == dens.back().out - 1 && col.front().out == cond.size(1) && col.back().out == 3,
              "field_mlp: the colour head does not fit the density MLP or the condition");
  // The last colour layer as rows [3, in] for its dot products.
  const Layer& last = col.back();
  std::vector<float> last_rows(static_cast<size_t>(last.out) * last.in);
  for (int i = 0; i < last.in; ++i)
    for (int o = 0; o < last.out; ++o) last_rows[o * last.in + i] = last.wt[i * last.out + o];
  auto sigma = torch::empty({M}, enc.options());
  auto rgb = torch::empty({M, 3}, enc.options());
  const float* ep = enc.data_ptr<float>();
  const float* cp = cond.data_ptr<float>();
  float* sp = sigma.data_ptr<float>();
  float* rp = rgb.data_ptr<float>();
  const int64_t E = enc.size(1), C = cond.size(1);
  const float bias = static_cast<float>(density_bias);
  at::parallel_for(0, (M + kBlock - 1) / kBlock, 8, [&](int64_t block_begin, int64_t block_end) {
    std::vector<float> buffers(2 * kBlock * kMaxWidth);
    float* a = buffers.data();
    float* b = a + kBlock * kMaxWidth;
    for (int64_t blk = block_begin; blk < block_end; ++blk) {
      const int64_t m0 = blk * kBlock;
      const int n = static_cast<int>(std::min<int64_t>(kBlock, M - m0));
      for (int p = 0; p < n; ++p)
        for (int64_t e = 0; e < E; ++e) b[p * kMaxWidth + e] = ep[(m0 + p) * E + e];
      // density MLP: ReLU between layers, none after the last
      float* x = b;
      float* y = a;
      for (size_t k = 0; k < dens.size(); ++k) {
        dense_block(x, dens[k], y, n);
        if (k + 1 < dens.size()) relu_block(y, dens[k].out, n);
        std::swap(x, y);
      }
      for (int p = 0; p < n; ++p) sp[m0 + p] = softplus(x[p * kMaxWidth] + bias);
      // colour head: the first layer reads the features after sigma and adds the ray's condition
      dense_block(x + 1, col[0], y, n);
      for (int p = 0; p < n; ++p) {
        const float* c = cp + ((m0 + p) / samples) * C;
        float* yp = y + p * kMaxWidth;
#pragma omp simd
        for (int64_t o = 0; o < C; ++o) yp[o] += c[o];
      }
      std::swap(x, y);
      for (size_t k = 1; k < col.size(); ++k) {
        relu_block(x, col[k - 1].out, n);
        if (k + 1 < col.size()) dense_block(x, col[k], y, n);
        else dense_narrow_block(x, col[k], last_rows.data(), y, n);
        std::swap(x, y);
      }
      for (int p = 0; p < n; ++p)
        for (int o = 0; o < 3; ++o) rp[(m0 + p) * 3 + o] = sigmoid(x[p * kMaxWidth + o]);
    }
  });
  return {sigma, rgb};
}
