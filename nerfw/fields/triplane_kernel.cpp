// Fused sampling of factorised tri-planes on the CPU: nerfw/fields/fused_planes.py builds and calls it.
//
// What it computes is TriPlanes' reference path (nerfw/fields/encodings.py): for every point and every resolution,
// bilinear interpolation (grid_sample, align_corners=True, border padding) in the xy, xz and yz planes, and the
// Hadamard product of the three (K-Planes Sec. 3.2). Two things make it faster than three grid_sample calls per
// resolution on a CPU, mostly in the backward (measured in docs/model.md):
//  * the planes are stored [3, R, R, F] (channels last), so a tap reads or writes one run of F floats (one AVX2
//    register for F = 8) instead of F values R*R apart;
//  * the backward scatters each (resolution, plane) in its own task, so no two threads write the same gradient and
//    no atomics are needed; tasks run largest plane first for balance;
//  * the forward keeps each plane's features [L, 3, M, F] for the backward's product rule, contiguous per task.
// Gradients flow to the planes only (the sample coordinates get none).
#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <vector>

namespace {

constexpr int kAxes[3][2] = {{0, 1}, {0, 2}, {1, 2}};  // the plane's (width, height) coordinates of a point

template <typename T>
struct Taps {
  int64_t index[4];  // cell index y * R + x of the four corners
  T weight[4];
};

// Bilinear taps of one point in an R x R plane, as grid_sample(align_corners=True, padding_mode="border") takes
// them. A NaN coordinate reads corner 0 with NaN weights, so the NaN reaches the output as it does in grid_sample.
template <typename T>
inline Taps<T> bilinear_taps(T u, T v, int64_t R) {
  const T last = T(R - 1);
  T x = (u + T(1)) * T(0.5) * last;
  T y = (v + T(1)) * T(0.5) * last;
  const bool nan = std::isnan(x) || std::isnan(y);
  x = x > T(0) ? (x < last ? x : last) : T(0);  // border padding; written so that NaN maps to 0
  y = y > T(0) ? (y < last ? y : last) : T(0);
  const int64_t x0 = static_cast<int64_t>(x), y0 = static_cast<int64_t>(y);  // floor: x, y >= 0
  const int64_t x1 = std::min<int64_t>(x0 + 1, R - 1), y1 = std::min<int64_t>(y0 + 1, R - 1);
  const T fx = nan ? T(NAN) : x - T(x0), fy = nan ? T(NAN) : y - T(y0);
  Taps<T> t;
  t.index[0] = y0 * R + x0; t.weight[0] = (T(1) - fx) * (T(1) - fy);
  t.index[1] = y0 * R + x1; t.weight[1] = fx * (T(1) - fy);
  t.index[2] = y1 * R + x0; t.weight[2] = (T(1) - fx) * fy;
  t.index[3] = y1 * R + x1; t.weight[3] = fx * fy;
  return t;
}

// kF > 0: the feature count known at compile time (the loops unroll into vector instructions); 0: `features`.
template <typename T, int kF>
void forward_points(const std::vector<const T*>& planes, const std::vector<int64_t>& res, const T* x, T* out,
                    T* feats, int64_t features, int64_t begin, int64_t end, int64_t M) {
  const int64_t F = kF > 0 ? kF : features;
  const int64_t L = static_cast<int64_t>(planes.size());
  std::vector<T> scratch(kF > 0 ? 0 : F);
  T fixed[kF > 0 ? kF : 1];
  T* a = kF > 0 ? fixed : scratch.data();
  // One plane at a time over the chunk's points: the cells of one plane stay in cache between neighbouring points.
  for (int64_t l = 0; l < L; ++l) {
    const int64_t R = res[l];
    for (int p = 0; p < 3; ++p) {
      const T* plane = planes[l] + p * R * R * F;
      for (int64_t m = begin; m < end; ++m) {
        const Taps<T> t = bilinear_taps<T>(x[m * 3 + kAxes[p][0]], x[m * 3 + kAxes[p][1]], R);
        for (int64_t f = 0; f < F; ++f) a[f] = T(0);
        for (int k = 0; k < 4; ++k) {
          const T* cell = plane + t.index[k] * F;
          const T w = t.weight[k];
          for (int64_t f = 0; f < F; ++f) a[f] += w * cell[f];
        }
        T* o = out + (m * L + l) * F;
        if (p == 0) {
          for (int64_t f = 0; f < F; ++f) o[f] = a[f];
        } else {
          for (int64_t f = 0; f < F; ++f) o[f] *= a[f];
        }
        if (feats) {
          T* keep = feats + ((l * 3 + p) * M + m) * F;
          for (int64_t f = 0; f < F; ++f) keep[f] = a[f];
        }
      }
    }
  }
}

template <typename T, int kF>
void backward_plane(const T* x, const T* feats, const T* grad_out, T* grad_plane, int64_t R, int64_t l, int p,
                    int64_t L, int64_t M, int64_t features) {
  const int64_t F = kF > 0 ? kF : features;
  std::fill(grad_plane, grad_plane + R * R * F, T(0));
  const int q = (p + 1) % 3, r = (p + 2) % 3;  // d(f_p f_q f_r)/d f_p = f_q f_r
  std::vector<T> scratch(kF > 0 ? 0 : F);
  T fixed[kF > 0 ? kF : 1];
  T* g = kF > 0 ? fixed : scratch.data();
  for (int64_t m = 0; m < M; ++m) {
    const T* go = grad_out + (m * L + l) * F;
    const T* fq = feats + ((l * 3 + q) * M + m) * F;
    const T* fr = feats + ((l * 3 + r) * M + m) * F;
    for (int64_t f = 0; f < F; ++f) g[f] = go[f] * fq[f] * fr[f];
    const Taps<T> t = bilinear_taps<T>(x[m * 3 + kAxes[p][0]], x[m * 3 + kAxes[p][1]], R);
    for (int k = 0; k < 4; ++k) {
      T* cell = grad_plane + t.index[k] * F;
      const T w = t.weight[k];
      for (int64_t f = 0; f < F; ++f) cell[f] += w * g[f];
    }
  }
}

void check_inputs(const std::vector<torch::Tensor>& planes, const torch::Tensor& x) {
  TORCH_CHECK(!planes.empty(), "triplanes: no planes");
  TORCH_CHECK(x.dim() == 2 && x.size(1) == 3 && x.is_contiguous() && x.device().is_cpu(),
              "triplanes: points must be a contiguous CPU tensor [M, 3]");
  for (const auto& plane : planes) {
    TORCH_CHECK(plane.dim() == 4 && plane.size(0) == 3 && plane.size(1) == plane.size(2) &&
                    plane.size(3) == planes[0].size(3) && plane.is_contiguous() &&
                    plane.scalar_type() == x.scalar_type() && plane.device().is_cpu(),
                "triplanes: planes must be contiguous CPU tensors [3, R, R, F] of the points' dtype");
  }
}

template <typename T, int kF>
std::vector<torch::Tensor> forward_typed(const std::vector<torch::Tensor>& planes, const torch::Tensor& x,
                                         bool keep_features) {
  const int64_t M = x.size(0), L = static_cast<int64_t>(planes.size()), F = planes[0].size(3);
  auto out = torch::empty({M, L * F}, x.options());
  auto feats = keep_features ? torch::empty({L, 3, M, F}, x.options()) : torch::empty({0}, x.options());
  std::vector<const T*> data;
  std::vector<int64_t> res;
  for (const auto& plane : planes) { data.push_back(plane.data_ptr<T>()); res.push_back(plane.size(1)); }
  const T* xp = x.data_ptr<T>();
  T* op = out.data_ptr<T>();
  T* fp = keep_features ? feats.data_ptr<T>() : nullptr;
  at::parallel_for(0, M, 512, [&](int64_t begin, int64_t end) {
    forward_points<T, kF>(data, res, xp, op, fp, F, begin, end, M);
  });
  return {out, feats};
}

template <typename T, int kF>
std::vector<torch::Tensor> backward_typed(const std::vector<torch::Tensor>& planes, const torch::Tensor& x,
                                          const torch::Tensor& feats, const torch::Tensor& grad_out) {
  const int64_t M = x.size(0), L = static_cast<int64_t>(planes.size()), F = planes[0].size(3);
  std::vector<torch::Tensor> grads;
  for (const auto& plane : planes) grads.push_back(torch::empty_like(plane));
  std::vector<int64_t> tasks;  // (level, plane) pairs, largest planes first
  for (int64_t l = 0; l < L; ++l)
    for (int p = 0; p < 3; ++p) tasks.push_back(l * 3 + p);
  std::stable_sort(tasks.begin(), tasks.end(),
                   [&](int64_t a, int64_t b) { return planes[a / 3].size(1) > planes[b / 3].size(1); });
  const T* xp = x.data_ptr<T>();
  const T* fp = feats.data_ptr<T>();
  const T* gp = grad_out.data_ptr<T>();
  const int64_t n_tasks = static_cast<int64_t>(tasks.size());
#pragma omp parallel for schedule(dynamic, 1) num_threads(std::max(1, at::get_num_threads()))
  for (int64_t i = 0; i < n_tasks; ++i) {
    const int64_t l = tasks[i] / 3;
    const int p = static_cast<int>(tasks[i] % 3);
    const int64_t R = planes[l].size(1);
    backward_plane<T, kF>(xp, fp, gp, grads[l].data_ptr<T>() + p * R * R * F, R, l, p, L, M, F);
  }
  return grads;
}

template <typename T>
std::vector<torch::Tensor> forward_dispatch(const std::vector<torch::Tensor>& planes, const torch::Tensor& x,
                                            bool keep_features) {
  switch (planes[0].size(3)) {
    case 4: return forward_typed<T, 4>(planes, x, keep_features);
    case 8: return forward_typed<T, 8>(planes, x, keep_features);
    case 16: return forward_typed<T, 16>(planes, x, keep_features);
    default: return forward_typed<T, 0>(planes, x, keep_features);
  }
}

template <typename T>
std::vector<torch::Tensor> backward_dispatch(const std::vector<torch::Tensor>& planes, const torch::Tensor& x,
                                             const torch::Tensor& feats, const torch::Tensor& grad_out) {
  switch (planes[0].size(3)) {
    case 4: return backward_typed<T, 4>(planes, x, feats, grad_out);
    case 8: return backward_typed<T, 8>(planes, x, feats, grad_out);
    case 16: return backward_typed<T, 16>(planes, x, feats, grad_out);
    default: return backward_typed<T, 0>(planes, x, feats, grad_out);
  }
}

}  // namespace

// planes[l]: [3, R_l, R_l, F]; x: [M, 3] in [-1, 1]. Returns {features [M, L * F], per-plane features
// [L, 3, M, F] for the backward (empty unless keep_features)}.
std::vector<torch::Tensor> triplanes_forward(std::vector<torch::Tensor> planes, torch::Tensor x, bool keep_features) {
  check_inputs(planes, x);
  if (x.scalar_type() == torch::kDouble) return forward_dispatch<double>(planes, x, keep_features);
  TORCH_CHECK(x.scalar_type() == torch::kFloat, "triplanes: float32 or float64 only");
  return forward_dispatch<float>(planes, x, keep_features);
}

// The gradient of sum(grad_out * features) with respect to every plane: tensors [3, R_l, R_l, F].
std::vector<torch::Tensor> triplanes_backward(std::vector<torch::Tensor> planes, torch::Tensor x,
                                              torch::Tensor feats, torch::Tensor grad_out) {
  check_inputs(planes, x);
  const int64_t M = x.size(0), L = static_cast<int64_t>(planes.size()), F = planes[0].size(3), LF = L * F;
  TORCH_CHECK(feats.sizes() == torch::IntArrayRef({L, 3, M, F}) && feats.is_contiguous(),
              "triplanes: saved features of the wrong shape");
  TORCH_CHECK(grad_out.sizes() == torch::IntArrayRef({M, LF}) && grad_out.is_contiguous(),
              "triplanes: output gradient of the wrong shape");
  if (x.scalar_type() == torch::kDouble) return backward_dispatch<double>(planes, x, feats, grad_out);
  return backward_dispatch<float>(planes, x, feats, grad_out);
}

// field_mlp_kernel.cpp
std::vector<torch::Tensor> field_mlp_forward(const torch::Tensor& enc, const torch::Tensor& cond, int64_t samples,
                                             const std::vector<torch::Tensor>& density_wts,
                                             const std::vector<torch::Tensor>& density_biases,
                                             const std::vector<torch::Tensor>& colour_wts,
                                             const std::vector<torch::Tensor>& colour_biases, double density_bias);

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &triplanes_forward, "fused tri-plane sampling (forward)");
  m.def("backward", &triplanes_backward, "fused tri-plane sampling (gradients of the planes)");
  m.def("field_mlp_forward", &field_mlp_forward, "the grid field's MLPs per sample, for inference");
}
