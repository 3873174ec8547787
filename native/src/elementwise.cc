// Elementwise and row-wise kernels: tanh (tfjs's Tanh), add (tfjs's float32 Add where one operand repeats over
// the other's leading axes or has its shape), GELU (tanh form), LayerNorm and softmax
// with their gradients, each one vectorised pass over the data instead of the 4–15 wasm kernels
// (and as many heap round trips) their composed forms take. softmaxRows / softmaxGradRows are
// shared with attention.cc and router.cc.

#include "common.h"

namespace vmoe {

namespace {

// tanh |x| = 1 - 2/(e^{2|x|} + 1) for |x| >= 1/4, its odd Taylor series to x^9 below (no
// cancellation near 0; truncation < 3e-9); |x| clamped at 9, where tanh rounds to 1 in float32.
inline float tanhOne(float v) {
  const float abs = fromBits(bitsOf(v) & 0x7fffffff);
  const float a = abs > 9.0f ? 9.0f : abs;  // NaN stays NaN
  const float s = a * a;
  const float series = a * (1.0f + s * (-1.0f / 3 + s * (2.0f / 15 + s * (-17.0f / 315 + s * (62.0f / 2835)))));
  const float viaExp = 1.0f - 2.0f / (expSmall(2.0f * a) + 1.0f);
  const float r = a < 0.25f ? series : viaExp;
  return fromBits(bitsOf(r) | (bitsOf(v) & static_cast<int32_t>(0x80000000u)));
}

__attribute__((target_clones("avx512f", "avx2", "default")))
void tanhLoop(const float* __restrict x, float* __restrict y, int64_t n) {
  for (int64_t i = 0; i < n; i++) y[i] = tanhOne(x[i]);
}

// The formula of src/vmoe/layers.ts gelu(), in its order of operations:
// y = (x/2)(1 + tanh(c (x + 0.044715 x^3))), c = sqrt(2/pi).
constexpr float kGeluC = 0.7978845608028654f;
constexpr float kGeluA = 0.044715f;

__attribute__((always_inline)) inline float geluOne(float v) {
  const float t = tanhOne((v + v * v * v * kGeluA) * kGeluC);
  return v * 0.5f * (t + 1.0f);
}

__attribute__((target_clones("avx512f", "avx2", "default")))
void geluLoop(const float* __restrict x, float* __restrict y, int64_t n) {
  for (int64_t i = 0; i < n; i++) y[i] = geluOne(x[i]);
}

// y = gelu(x + bias) over row-major (rows, cols), bias per column: the MLP's first product's bias added in the
// GELU pass instead of copied into every row before the product.
__attribute__((target_clones("avx512f", "avx2", "default")))
void geluBiasLoop(const float* __restrict x, const float* __restrict bias, float* __restrict y, int64_t rows, int64_t cols) {
  for (int64_t r = 0; r < rows; r++) {
    const float* xr = x + r * cols;
    float* yr = y + r * cols;
    for (int64_t j = 0; j < cols; j++) yr[j] = geluOne(xr[j] + bias[j]);
  }
}

// dy/dx = (1 + t)/2 + (x/2)(1 - t^2) c (1 + 3·0.044715 x^2), t the forward tanh.
__attribute__((target_clones("avx512f", "avx2", "default")))
void geluGradLoop(const float* __restrict dy, const float* __restrict x, float* __restrict dx, int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    const float v = x[i];
    const float t = tanhOne((v + v * v * v * kGeluA) * kGeluC);
    const float dInner = kGeluC * (1.0f + 3.0f * kGeluA * v * v);
    dx[i] = dy[i] * (0.5f * (1.0f + t) + 0.5f * v * ((1.0f - t) * (1.0f + t)) * dInner);
  }
}

// An elementwise entry point (heap, srcOff, dstOff, n) over loop(src, dst, n).
template <void (*loop)(const float*, float*, int64_t)>
napi_value unaryEntry(napi_env env, napi_callback_info info, const char* name) {
  napi_value argv[4];
  float* heap;
  size_t length;
  int64_t v[3];
  if (!heapKernelArgs(env, info, 4, argv, "vmoe_blas: elementwise kernels expect 4 arguments", &heap, &length, 3, v)) return nullptr;
  const int64_t src = v[0], dst = v[1], n = v[2];
  if (!inRange(env, src, n, length, name) || !inRange(env, dst, n, length, name)) return nullptr;
  forChunks(n, [&](int64_t lo, int64_t hi) { loop(heap + src + lo, heap + dst + lo, hi - lo); });
  return nullptr;
}

// A gradient entry point (heap, dyOff, xOff, dxOff, n) over loop(dy, x, dx, n).
template <void (*loop)(const float*, const float*, float*, int64_t)>
napi_value unaryGradEntry(napi_env env, napi_callback_info info, const char* name) {
  napi_value argv[5];
  float* heap;
  size_t length;
  int64_t v[4];
  if (!heapKernelArgs(env, info, 5, argv, "vmoe_blas: elementwise gradient kernels expect 5 arguments", &heap, &length, 4, v)) return nullptr;
  const int64_t dy = v[0], x = v[1], dx = v[2], n = v[3];
  if (!inRange(env, dy, n, length, name) || !inRange(env, x, n, length, name) || !inRange(env, dx, n, length, name)) return nullptr;
  forChunks(n, [&](int64_t lo, int64_t hi) { loop(heap + dy + lo, heap + x + lo, heap + dx + lo, hi - lo); });
  return nullptr;
}

}  // namespace

// tanh(heap, srcOff, dstOff, n), gelu(heap, srcOff, dstOff, n), geluGrad(heap, dyOff, xOff, dxOff, n)
napi_value Tanh(napi_env env, napi_callback_info info) {
  return unaryEntry<tanhLoop>(env, info, "vmoe_blas.tanh: an operand lies outside the heap");
}
napi_value Gelu(napi_env env, napi_callback_info info) {
  return unaryEntry<geluLoop>(env, info, "vmoe_blas.gelu: an operand lies outside the heap");
}
napi_value GeluGrad(napi_env env, napi_callback_info info) {
  return unaryGradEntry<geluGradLoop>(env, info, "vmoe_blas.geluGrad: an operand lies outside the heap");
}

namespace {

// y[i] = a[i] + b[i mod m] for n a multiple of m: a residual add (m = n) or a row vector over every row.
__attribute__((target_clones("avx512f", "avx2", "default")))
void addTiledLoop(const float* __restrict a, const float* __restrict b, float* __restrict y, int64_t n, int64_t m, int64_t start) {
  int64_t j = start % m;
  for (int64_t i = 0; i < n;) {
    const int64_t run = std::min(n - i, m - j);
    for (int64_t t = 0; t < run; t++) y[i + t] = a[i + t] + b[j + t];
    i += run;
    j = 0;
  }
}

}  // namespace

// addTiled(heap, aOff, bOff, yOff, n, m): y = a + b with b (m values) repeated n / m times. One IEEE add per value,
// as tfjs's wasm Add, so the sums are the same bits; the wasm kernel runs on one thread at about a third of the
// speed (a residual add of 64·50·64 values: ~0.3 ms there).
napi_value AddTiled(napi_env env, napi_callback_info info) {
  napi_value argv[6];
  float* heap;
  size_t length;
  int64_t v[5];
  if (!heapKernelArgs(env, info, 6, argv, "vmoe_blas.addTiled expects 6 arguments", &heap, &length, 5, v)) return nullptr;
  const int64_t a = v[0], b = v[1], y = v[2], n = v[3], m = v[4];
  const char* outside = "vmoe_blas.addTiled: an operand lies outside the heap";
  if (m < 1 || n % m != 0) {
    napi_throw_range_error(env, nullptr, "vmoe_blas.addTiled: n must be a multiple of m >= 1");
    return nullptr;
  }
  if (!inRange(env, a, n, length, outside) || !inRange(env, b, m, length, outside) || !inRange(env, y, n, length, outside)) {
    return nullptr;
  }
  forChunks(n, [&](int64_t lo, int64_t hi) { addTiledLoop(heap + a + lo, heap + b, heap + y + lo, hi - lo, m, lo); });
  return nullptr;
}

namespace {

// Σ (x - m)^2 over x[0..n), as laneSum.
inline double laneSquaredDeviation(const float* x, int64_t n, float m) {
  float acc[kLanes] = {};
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes) {
    for (int l = 0; l < kLanes; l++) {
      const float c = x[j + l] - m;
      acc[l] += c * c;
    }
  }
  double s = 0;
  for (int l = 0; l < kLanes; l++) s += acc[l];
  for (; j < n; j++) {
    const double c = x[j] - m;
    s += c * c;
  }
  return s;
}

// Mean and 1/sqrt(variance + eps) of one row, the variance from centred values (two passes)
// as the composed form computes it.
inline void rowMoments(const float* x, int64_t cols, float eps, float* mean, float* rstd) {
  const float m = static_cast<float>(laneSum(x, cols) / static_cast<double>(cols));
  const double var = laneSquaredDeviation(x, cols, m) / static_cast<double>(cols);
  *mean = m;
  *rstd = static_cast<float>(1.0 / std::sqrt(var + static_cast<double>(eps)));
}

__attribute__((target_clones("avx512f", "avx2", "default")))
void layerNormRows(const float* __restrict xs, const float* __restrict scale, const float* __restrict bias,
                   float* __restrict ys, int64_t rows, int64_t cols, float eps) {
  for (int64_t r = 0; r < rows; r++) {
    const float* x = xs + r * cols;
    float* y = ys + r * cols;
    float mean, rstd;
    rowMoments(x, cols, eps, &mean, &rstd);
    for (int64_t j = 0; j < cols; j++) y[j] = (x[j] - mean) * rstd * scale[j] + bias[j];
  }
}

// With xhat = (x - mean)·rstd and g = dy·scale, per row:
//   dx = rstd · (g - mean(g) - xhat · mean(g · xhat));
// dscale = Σ_rows dy · xhat and dbias = Σ_rows dy, accumulated per column in double.
__attribute__((target_clones("avx512f", "avx2", "default")))
void layerNormGradRows(const float* __restrict dys, const float* __restrict xs, const float* __restrict scale,
                       float* __restrict dxs, double* __restrict dscale, double* __restrict dbias,
                       float* __restrict g, float* __restrict xhat, int64_t rows, int64_t cols, float eps) {
  for (int64_t r = 0; r < rows; r++) {
    const float* x = xs + r * cols;
    const float* dy = dys + r * cols;
    float* dx = dxs + r * cols;
    float mean, rstd;
    rowMoments(x, cols, eps, &mean, &rstd);
    for (int64_t j = 0; j < cols; j++) {
      xhat[j] = (x[j] - mean) * rstd;
      g[j] = dy[j] * scale[j];
      dscale[j] += static_cast<double>(dy[j]) * xhat[j];
      dbias[j] += dy[j];
    }
    const float meanG = static_cast<float>(laneSum(g, cols) / static_cast<double>(cols));
    for (int64_t j = 0; j < cols; j++) dx[j] = g[j] * xhat[j];  // scratch: g·xhat, overwritten below
    const float meanGX = static_cast<float>(laneSum(dx, cols) / static_cast<double>(cols));
    for (int64_t j = 0; j < cols; j++) dx[j] = rstd * (g[j] - meanG - xhat[j] * meanGX);
  }
}

// rows >= 0 and cols >= 1 with rows × cols representable; throws `what` otherwise.
bool rowsCols(napi_env env, int64_t rows, int64_t cols, const char* what) {
  if (rows < 0 || cols < 1 || (rows > 0 && cols > INT64_MAX / rows)) {
    napi_throw_range_error(env, nullptr, what);
    return false;
  }
  return true;
}

// Validates (heap, offsets…, rows, cols, eps) shared by layerNorm and layerNormGrad: rows × cols
// blocks at the offsets in rowBlocks, cols-long vectors at those in vectors.
bool layerNormShapes(napi_env env, size_t length, int64_t rows, int64_t cols, const int64_t* rowBlocks, int numRowBlocks,
                     const int64_t* vectors, int numVectors, const char* what) {
  if (!rowsCols(env, rows, cols, what)) return false;
  for (int i = 0; i < numRowBlocks; i++) {
    if (!inRange(env, rowBlocks[i], rows * cols, length, what)) return false;
  }
  for (int i = 0; i < numVectors; i++) {
    if (!inRange(env, vectors[i], cols, length, what)) return false;
  }
  return true;
}

}  // namespace

// The forward loops other units call (block.cc's encoder block), each the same loop the entry points run.
void geluForward(const float* x, float* y, int64_t n) { geluLoop(x, y, n); }
void geluBiasForward(const float* x, const float* bias, float* y, int64_t rows, int64_t cols) {
  geluBiasLoop(x, bias, y, rows, cols);
}
void layerNormForward(const float* xs, const float* scale, const float* bias, float* ys, int64_t rows, int64_t cols,
                      float eps) {
  layerNormRows(xs, scale, bias, ys, rows, cols, eps);
}

// layerNorm(heap, xOff, scaleOff, biasOff, yOff, rows, cols, eps): each row of the row-major
// (rows, cols) x normalised over its cols values, then scaled and shifted per column.
napi_value LayerNorm(napi_env env, napi_callback_info info) {
  napi_value argv[8];
  float* heap;
  size_t length;
  int64_t v[6];
  if (!heapKernelArgs(env, info, 8, argv, "vmoe_blas.layerNorm expects 8 arguments", &heap, &length, 6, v)) return nullptr;
  double epsArg;
  NAPI_OK(napi_get_value_double(env, argv[7], &epsArg));
  const int64_t xOff = v[0], scaleOff = v[1], biasOff = v[2], yOff = v[3], rows = v[4], cols = v[5];
  const int64_t blocks[2] = {xOff, yOff}, vectors[2] = {scaleOff, biasOff};
  if (!(epsArg >= 0)) {
    napi_throw_range_error(env, nullptr, "vmoe_blas.layerNorm: epsilon must be >= 0");
    return nullptr;
  }
  if (!layerNormShapes(env, length, rows, cols, blocks, 2, vectors, 2, "vmoe_blas.layerNorm: bad shape or operand outside the heap")) {
    return nullptr;
  }
  // Rows in chunks over the threads (about 64 K values or more a chunk); each row's result does not depend on it.
  forChunks(rows * cols, [&](int64_t lo, int64_t hi) {
    const int64_t r0 = (lo + cols - 1) / cols, r1 = hi == rows * cols ? rows : (hi + cols - 1) / cols;
    layerNormRows(heap + xOff + r0 * cols, heap + scaleOff, heap + biasOff, heap + yOff + r0 * cols, r1 - r0, cols,
                  static_cast<float>(epsArg));
  });
  return nullptr;
}

// layerNormGrad(heap, dyOff, xOff, scaleOff, dxOff, dscaleOff, dbiasOff, rows, cols, eps)
napi_value LayerNormGrad(napi_env env, napi_callback_info info) {
  napi_value argv[10];
  float* heap;
  size_t length;
  int64_t v[8];
  if (!heapKernelArgs(env, info, 10, argv, "vmoe_blas.layerNormGrad expects 10 arguments", &heap, &length, 8, v)) return nullptr;
  double epsArg;
  NAPI_OK(napi_get_value_double(env, argv[9], &epsArg));
  const int64_t dyOff = v[0], xOff = v[1], scaleOff = v[2], dxOff = v[3], dscaleOff = v[4], dbiasOff = v[5];
  const int64_t rows = v[6], cols = v[7];
  const int64_t blocks[3] = {dyOff, xOff, dxOff}, vectors[3] = {scaleOff, dscaleOff, dbiasOff};
  if (!(epsArg >= 0)) {
    napi_throw_range_error(env, nullptr, "vmoe_blas.layerNormGrad: epsilon must be >= 0");
    return nullptr;
  }
  if (!layerNormShapes(env, length, rows, cols, blocks, 3, vectors, 3, "vmoe_blas.layerNormGrad: bad shape or operand outside the heap")) {
    return nullptr;
  }
  // Rows in parts of kPartRows, each with its own float64 column sums (dscale, dbias), added in part order: the
  // parts run on the OpenMP threads, and the result is the same for any thread count.
  constexpr int64_t kPartRows = 256;
  const size_t n = static_cast<size_t>(cols);
  const int64_t parts = std::max<int64_t>(1, (rows + kPartRows - 1) / kPartRows);
  std::vector<double> partSums(static_cast<size_t>(parts) * 2 * n, 0.0);  // (parts, [dscale | dbias], cols)
  const float eps = static_cast<float>(epsArg);
  auto part = [&](int64_t p) {
    std::vector<float> g(n), xhat(n);
    const int64_t r0 = p * kPartRows, r1 = std::min(rows, r0 + kPartRows);
    double* sums = partSums.data() + static_cast<size_t>(p) * 2 * n;
    layerNormGradRows(heap + dyOff + r0 * cols, heap + xOff + r0 * cols, heap + scaleOff, heap + dxOff + r0 * cols, sums,
                      sums + n, g.data(), xhat.data(), r1 - r0, cols, eps);
  };
#ifdef _OPENMP
  const int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
  if (threads > 1 && parts > 1 && rows * cols >= 65536) {
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int64_t p = 0; p < parts; p++) part(p);
  } else {
    for (int64_t p = 0; p < parts; p++) part(p);
  }
#else
  for (int64_t p = 0; p < parts; p++) part(p);
#endif
  float* dscaleOut = heap + dscaleOff;
  float* dbiasOut = heap + dbiasOff;
  for (int64_t j = 0; j < cols; j++) {
    double ds = 0.0, db = 0.0;
    for (int64_t p = 0; p < parts; p++) {
      ds += partSums[static_cast<size_t>(p) * 2 * n + j];
      db += partSums[static_cast<size_t>(p) * 2 * n + n + j];
    }
    dscaleOut[j] = static_cast<float>(ds);
    dbiasOut[j] = static_cast<float>(db);
  }
  return nullptr;
}

namespace {

// max of x[0..n), n >= 1, in kLanes independent partial maxima (vectorises, like laneSum).
// NaN is skipped here; the softmax below turns a row with NaN into NaN all the same.
inline float laneMax(const float* x, int64_t n) {
  float acc[kLanes];
  for (int l = 0; l < kLanes; l++) acc[l] = x[0];
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes) {
    for (int l = 0; l < kLanes; l++) acc[l] = x[j + l] > acc[l] ? x[j + l] : acc[l];
  }
  for (int w = kLanes / 2; w >= 1; w /= 2) {
    for (int l = 0; l < w; l++) acc[l] = acc[l + w] > acc[l] ? acc[l + w] : acc[l];
  }
  float m = acc[0];
  for (; j < n; j++) m = x[j] > m ? x[j] : m;
  return m;
}

// Softmax rows of exactly C columns (C a power of two ≤ 32: the router's E experts), fully
// unrolled: per row a tree max and tree sum instead of the generic loops' per-row setup, which
// dominates rows this short (3200 × 8 router gates: ~85 → ~15 µs).
template <int C>
__attribute__((always_inline)) inline void softmaxRowsFixed(const float* __restrict xs, float* __restrict ys, int64_t rows) {
  for (int64_t r = 0; r < rows; r++) {
    const float* x = xs + r * C;
    float* y = ys + r * C;
    const float max = treeMax<C>(x);
    float e[C];
    for (int j = 0; j < C; j++) {
      const float d = x[j] - max;
      const float v = expSmall(d < -87.0f ? -87.0f : d);
      e[j] = d < -87.0f ? 0.0f : v;
    }
    const float inv = 1.0f / treeSum<C>(e);
    for (int j = 0; j < C; j++) y[j] = e[j] * inv;
  }
}

template <int C>
__attribute__((always_inline)) inline void softmaxGradRowsFixed(const float* __restrict dys, const float* __restrict ys, float* __restrict dxs, int64_t rows) {
  for (int64_t r = 0; r < rows; r++) {
    const float* dy = dys + r * C;
    const float* y = ys + r * C;
    float p[C];
    for (int j = 0; j < C; j++) p[j] = dy[j] * y[j];
    const float dot = treeSum<C>(p);
    for (int j = 0; j < C; j++) dxs[r * C + j] = y[j] * (dy[j] - dot);
  }
}

}  // namespace

// Softmax over the last axis of row-major (rows, cols): y = e^{x - max} / Σ e^{x - max}.
// x - max <= 0; below -87 e^x is under 1e-38 and taken as 0 (also for -Infinity, as masks use).
__attribute__((target_clones("avx512f", "avx2", "default")))
void softmaxRows(const float* __restrict xs, float* __restrict ys, int64_t rows, int64_t cols) {
  switch (cols) {
    case 4: return softmaxRowsFixed<4>(xs, ys, rows);
    case 8: return softmaxRowsFixed<8>(xs, ys, rows);
    case 16: return softmaxRowsFixed<16>(xs, ys, rows);
    case 32: return softmaxRowsFixed<32>(xs, ys, rows);
    default: break;
  }
  for (int64_t r = 0; r < rows; r++) {
    const float* x = xs + r * cols;
    float* y = ys + r * cols;
    const float max = laneMax(x, cols);
    for (int64_t j = 0; j < cols; j++) {
      const float d = x[j] - max;  // NaN when max is ±Infinity or a value is NaN: the row becomes NaN
      const float e = expSmall(d < -87.0f ? -87.0f : d);
      y[j] = d < -87.0f ? 0.0f : e;
    }
    const float inv = static_cast<float>(1.0 / laneSum(y, cols));
    for (int64_t j = 0; j < cols; j++) y[j] *= inv;
  }
}

// dx = y · (dy - Σ_j dy_j y_j) per row.
__attribute__((target_clones("avx512f", "avx2", "default")))
void softmaxGradRows(const float* __restrict dys, const float* __restrict ys, float* __restrict dxs, int64_t rows, int64_t cols) {
  switch (cols) {
    case 4: return softmaxGradRowsFixed<4>(dys, ys, dxs, rows);
    case 8: return softmaxGradRowsFixed<8>(dys, ys, dxs, rows);
    case 16: return softmaxGradRowsFixed<16>(dys, ys, dxs, rows);
    case 32: return softmaxGradRowsFixed<32>(dys, ys, dxs, rows);
    default: break;
  }
  for (int64_t r = 0; r < rows; r++) {
    const float* dy = dys + r * cols;
    const float* y = ys + r * cols;
    float* dx = dxs + r * cols;
    for (int64_t j = 0; j < cols; j++) dx[j] = dy[j] * y[j];  // scratch for the dot product
    const float dot = static_cast<float>(laneSum(dx, cols));
    for (int64_t j = 0; j < cols; j++) dx[j] = y[j] * (dy[j] - dot);
  }
}

// softmax(heap, xOff, yOff, rows, cols)
napi_value Softmax(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  float* heap;
  size_t length;
  int64_t v[4];
  if (!heapKernelArgs(env, info, 5, argv, "vmoe_blas.softmax expects 5 arguments", &heap, &length, 4, v)) return nullptr;
  const int64_t x = v[0], y = v[1], rows = v[2], cols = v[3];
  if (!rowsCols(env, rows, cols, "vmoe_blas.softmax: bad dimensions") ||
      !inRange(env, x, rows * cols, length, "vmoe_blas.softmax: x outside the heap") ||
      !inRange(env, y, rows * cols, length, "vmoe_blas.softmax: y outside the heap")) {
    return nullptr;
  }
  softmaxRows(heap + x, heap + y, rows, cols);
  return nullptr;
}

// softmaxGrad(heap, dyOff, yOff, dxOff, rows, cols)
napi_value SoftmaxGrad(napi_env env, napi_callback_info info) {
  napi_value argv[6];
  float* heap;
  size_t length;
  int64_t v[5];
  if (!heapKernelArgs(env, info, 6, argv, "vmoe_blas.softmaxGrad expects 6 arguments", &heap, &length, 5, v)) return nullptr;
  const int64_t dy = v[0], y = v[1], dx = v[2], rows = v[3], cols = v[4];
  if (!rowsCols(env, rows, cols, "vmoe_blas.softmaxGrad: bad dimensions") ||
      !inRange(env, dy, rows * cols, length, "vmoe_blas.softmaxGrad: dy outside the heap") ||
      !inRange(env, y, rows * cols, length, "vmoe_blas.softmaxGrad: y outside the heap") ||
      !inRange(env, dx, rows * cols, length, "vmoe_blas.softmaxGrad: dx outside the heap")) {
    return nullptr;
  }
  softmaxGradRows(heap + dy, heap + y, heap + dx, rows, cols);
  return nullptr;
}

}  // namespace vmoe
