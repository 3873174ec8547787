// The optimiser's kernels: one fused Adam step per parameter (adam) and the squared norm of
// many tensors at once (sumOfSquares, for global gradient-norm clipping).

#include "common.h"

namespace vmoe {

namespace {

// One Adam step per parameter in one pass (the composed form takes ~12 kernels per parameter,
// each a heap round trip and a tfjs op's bookkeeping), in float32 with the composed form's order
// of operations and its float32 coefficients, so results match it to the last bit or so.

// coefficients: [beta1, 1 - beta1, beta2, 1 - beta2, lr / biasCorrection1, biasCorrection2, epsilon,
//                lr · weightDecay (0: none), gradient scale (1: none)]
constexpr int kAdamCoefficients = 9;

__attribute__((target_clones("avx512f", "avx2", "default")))
void adamLoop(const float* __restrict p, const float* __restrict m, const float* __restrict v, const float* __restrict grad,
              float* __restrict pOut, float* __restrict mOut, float* __restrict vOut, int64_t n, const float* c, bool scaled,
              bool decayed) {
  const float b1 = c[0], oneMinusB1 = c[1], b2 = c[2], oneMinusB2 = c[3], stepSize = c[4], bc2 = c[5], eps = c[6];
  const float lrWd = c[7], gradScale = c[8];
  for (int64_t i = 0; i < n; i++) {
    const float g = scaled ? grad[i] * gradScale : grad[i];
    const float mNew = m[i] * b1 + g * oneMinusB1;
    const float vNew = v[i] * b2 + (g * g) * oneMinusB2;
    float update = (mNew * stepSize) / (std::sqrt(vNew / bc2) + eps);
    if (decayed) update = update + p[i] * lrWd;
    pOut[i] = p[i] - update;
    mOut[i] = mNew;
    vOut[i] = vNew;
  }
}

}  // namespace

// adam(heap, pOff, mOff, vOff, gradOff, pOutOff, mOutOff, vOutOff, n, coefficients: Float64Array(9))
napi_value Adam(napi_env env, napi_callback_info info) {
  napi_value argv[10];
  float* heap;
  size_t length;
  int64_t v[8];
  if (!heapKernelArgs(env, info, 10, argv, "vmoe_blas.adam expects 10 arguments", &heap, &length, 8, v)) return nullptr;
  const int64_t n = v[7];
  for (int i = 0; i < 7; i++) {
    if (!inRange(env, v[i], n, length, "vmoe_blas.adam: operand outside the heap")) return nullptr;
  }
  const double* coefficients;
  size_t count;
  const char* badCoefficients = "vmoe_blas.adam: coefficients must be a Float64Array of 9";
  if (!float64ArrayArg(env, argv[9], &coefficients, &count, badCoefficients)) return nullptr;
  if (count != kAdamCoefficients) {
    napi_throw_type_error(env, nullptr, badCoefficients);
    return nullptr;
  }
  float c[kAdamCoefficients];
  for (int i = 0; i < kAdamCoefficients; i++) {
    if (!std::isfinite(coefficients[i])) {
      napi_throw_range_error(env, nullptr, "vmoe_blas.adam: coefficients must be finite");
      return nullptr;
    }
    c[i] = static_cast<float>(coefficients[i]);
  }
  // Elementwise, so the cut over the threads does not change a bit; it matters at S/32 (22 M parameters, seven
  // streams of floats: 93 ms a step on one thread).
  const bool scaled = coefficients[8] != 1.0, decayed = coefficients[7] != 0.0;
  forChunks(n, [&](int64_t lo, int64_t hi) {
    adamLoop(heap + v[0] + lo, heap + v[1] + lo, heap + v[2] + lo, heap + v[3] + lo, heap + v[4] + lo, heap + v[5] + lo,
             heap + v[6] + lo, hi - lo, c, scaled, decayed);
  });
  return nullptr;
}

// sumOfSquares(heap, offsets: Float64Array, sizes: Float64Array) → Σ_t Σ_i x_t[i]^2 over several
// tensors (the global gradient norm), accumulated in double.
napi_value SumOfSquares(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  if (!checkArgc(env, info, 3, argv, "vmoe_blas.sumOfSquares expects 3 arguments")) return nullptr;
  float* heap;
  size_t length;
  if (!heapArg(env, argv[0], &heap, &length)) return nullptr;
  const double* lists[2];
  size_t counts[2];
  for (int a = 0; a < 2; a++) {
    if (!float64ArrayArg(env, argv[1 + a], &lists[a], &counts[a], "vmoe_blas.sumOfSquares: offsets and sizes must be Float64Arrays")) {
      return nullptr;
    }
  }
  if (counts[0] != counts[1]) {
    napi_throw_range_error(env, nullptr, "vmoe_blas.sumOfSquares: offsets and sizes differ in length");
    return nullptr;
  }
  const auto isIndex = [](double d) { return d >= 0 && d <= 9007199254740992.0 && d == std::floor(d); };
  for (size_t t = 0; t < counts[0]; t++) {
    const double off = lists[0][t], n = lists[1][t];
    if (!isIndex(off) || !isIndex(n)) {
      napi_throw_range_error(env, nullptr, "vmoe_blas.sumOfSquares: offsets and sizes must be non-negative integers");
      return nullptr;
    }
    if (!inRange(env, static_cast<int64_t>(off), static_cast<int64_t>(n), length, "vmoe_blas.sumOfSquares: tensor outside the heap")) {
      return nullptr;
    }
  }
  double total = 0;
  for (size_t t = 0; t < counts[0]; t++) {
    const float* x = heap + static_cast<int64_t>(lists[0][t]);
    const int64_t n = static_cast<int64_t>(lists[1][t]);
    float acc[kLanes] = {};
    int64_t i = 0;
    for (; i + kLanes <= n; i += kLanes) {
      for (int l = 0; l < kLanes; l++) acc[l] += x[i + l] * x[i + l];
    }
    for (int l = 0; l < kLanes; l++) total += acc[l];
    for (; i < n; i++) total += static_cast<double>(x[i]) * x[i];
  }
  napi_value result;
  NAPI_OK(napi_create_double(env, total, &result));
  return result;
}

}  // namespace vmoe
