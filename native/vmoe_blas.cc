// Native kernels for the wasm backend: OpenBLAS sgemm, strided copies, reductions
// and fused elementwise / normalisation loops on zero-copy views of the wasm heap.
// Plain Node-API (node_api.h, ABI-stable across Node versions) so the build needs
// no npm package beyond node-gyp itself.
//
// Every entry point takes `heap`, a Float32Array over the whole wasm memory,
// and float-element offsets into it; the caller (src/engine/native-blas.ts)
// has already allocated the output, so the heap cannot move during a call.
#include <node_api.h>
#include <cblas.h>
#ifdef VMOE_HAVE_DNNL
// oneDNN's sgemm JIT-compiles kernels for the CPU's own ISA (AVX-512 where present) whatever
// OPENBLAS_CORETYPE says; on the reference machine it ran our shapes ~1.9x faster than the
// OpenBLAS kernels the environment pins (Haswell) and scales to 2 threads.
#include <dnnl.h>
#include <omp.h>
#endif

#include <cmath>
#include <cstdint>
#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

namespace {

#define NAPI_OK(call)                                                   \
  do {                                                                  \
    if ((call) != napi_ok) {                                            \
      napi_throw_error(env, nullptr, "vmoe_blas: N-API call failed: " #call); \
      return nullptr;                                                   \
    }                                                                   \
  } while (0)

bool heapArg(napi_env env, napi_value v, float** data, size_t* length) {
  napi_typedarray_type type;
  napi_value buffer;
  size_t offset;
  void* raw = nullptr;
  if (napi_get_typedarray_info(env, v, &type, length, &raw, &buffer, &offset) != napi_ok ||
      type != napi_float32_array) {
    napi_throw_type_error(env, nullptr, "vmoe_blas: heap must be a Float32Array");
    return false;
  }
  *data = static_cast<float*>(raw);
  return true;
}

bool int64Arg(napi_env env, napi_value v, int64_t* out) {
  if (napi_get_value_int64(env, v, out) != napi_ok) {
    napi_throw_type_error(env, nullptr, "vmoe_blas: expected a number");
    return false;
  }
  return true;
}

bool inRange(napi_env env, int64_t off, int64_t count, size_t length, const char* what) {
  if (off < 0 || count < 0 || static_cast<uint64_t>(off + count) > length) {
    napi_throw_range_error(env, nullptr, what);
    return false;
  }
  return true;
}

// The GEMM library every product goes through: oneDNN when compiled in (the default), else
// OpenBLAS; setGemm switches at run time so the two can be compared and tested.
bool useDnnl =
#ifdef VMOE_HAVE_DNNL
    true;
#else
    false;
#endif

// Row-major C = alpha op(A) op(B) + beta C with explicit leading dimensions.
inline void sgemmRowMajor(bool ta, bool tb, int M, int N, int K, float alpha, const float* a, int lda, const float* b,
                          int ldb, float beta, float* c, int ldc) {
#ifdef VMOE_HAVE_DNNL
  if (useDnnl &&
      dnnl_sgemm(ta ? 'T' : 'N', tb ? 'T' : 'N', M, N, K, alpha, a, lda, b, ldb, beta, c, ldc) == dnnl_success) {
    return;
  }
#endif
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K, alpha, a, lda, b,
              ldb, beta, c, ldc);
}

// One row-major product C = op(A) op(B) (+ bias rows), then optional ReLU.
void gemm(bool ta, bool tb, int M, int N, int K, const float* a, const float* b, float* c,
          const float* bias, bool relu) {
  float beta = 0.0f;
  if (bias != nullptr) {
    for (int i = 0; i < M; i++) std::memcpy(c + static_cast<size_t>(i) * N, bias, sizeof(float) * N);
    beta = 1.0f;
  }
  if (K == 0) {
    if (bias == nullptr) std::memset(c, 0, sizeof(float) * static_cast<size_t>(M) * N);
  } else {
    sgemmRowMajor(ta, tb, M, N, K, 1.0f, a, ta ? M : K, b, tb ? K : N, beta, c, N);
  }
  if (relu) {
    const size_t n = static_cast<size_t>(M) * N;
    for (size_t i = 0; i < n; i++) c[i] = c[i] > 0.0f ? c[i] : 0.0f;
  }
}

// sgemm(heap, transA, transB, M, N, K, batch, aOff, aStride, bOff, bStride, cOff, cStride, biasOff, biasStride, relu)
// A batch stride of 0 broadcasts that operand (or the bias row) over the batch; biasOff < 0 means no bias.
napi_value Sgemm(napi_env env, napi_callback_info info) {
  size_t argc = 16;
  napi_value argv[16];
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  if (argc != 16) {
    napi_throw_type_error(env, nullptr, "vmoe_blas.sgemm expects 16 arguments");
    return nullptr;
  }
  float* heap;
  size_t length;
  if (!heapArg(env, argv[0], &heap, &length)) return nullptr;
  bool ta, tb, relu;
  NAPI_OK(napi_get_value_bool(env, argv[1], &ta));
  NAPI_OK(napi_get_value_bool(env, argv[2], &tb));
  int64_t v[12];
  for (int i = 0; i < 12; i++) {
    if (!int64Arg(env, argv[3 + i], &v[i])) return nullptr;
  }
  NAPI_OK(napi_get_value_bool(env, argv[15], &relu));
  const int64_t M = v[0], N = v[1], K = v[2], batch = v[3];
  const int64_t aOff = v[4], aStride = v[5], bOff = v[6], bStride = v[7], cOff = v[8], cStride = v[9];
  const int64_t biasOff = v[10], biasStride = v[11];
  if (M < 0 || N < 0 || K < 0 || batch < 0 || M > INT32_MAX || N > INT32_MAX || K > INT32_MAX) {
    napi_throw_range_error(env, nullptr, "vmoe_blas.sgemm: bad dimensions");
    return nullptr;
  }
  if (aStride < 0 || bStride < 0 || cStride < 0 || biasStride < 0) {
    napi_throw_range_error(env, nullptr, "vmoe_blas.sgemm: negative batch stride");
    return nullptr;
  }
  if (batch > 0) {
    const int64_t last = batch - 1;
    if (!inRange(env, aOff, last * aStride + M * K, length, "vmoe_blas.sgemm: A outside the heap") ||
        !inRange(env, bOff, last * bStride + K * N, length, "vmoe_blas.sgemm: B outside the heap") ||
        !inRange(env, cOff, last * cStride + M * N, length, "vmoe_blas.sgemm: C outside the heap") ||
        (biasOff >= 0 && !inRange(env, biasOff, last * biasStride + N, length, "vmoe_blas.sgemm: bias outside the heap"))) {
      return nullptr;
    }
  }
  for (int64_t i = 0; i < batch; i++) {
    const float* bias = biasOff >= 0 ? heap + biasOff + i * biasStride : nullptr;
    gemm(ta, tb, static_cast<int>(M), static_cast<int>(N), static_cast<int>(K), heap + aOff + i * aStride,
         heap + bOff + i * bStride, heap + cOff + i * cStride, bias, relu);
  }
  return nullptr;
}

// sgemmOffsets(heap, transA, transB, M, N, K, offsets: Int32Array [a0, b0, c0, a1, b1, c1, …])
// for batch dimensions that broadcast in a pattern no single stride describes.
napi_value SgemmOffsets(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7];
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  if (argc != 7) {
    napi_throw_type_error(env, nullptr, "vmoe_blas.sgemmOffsets expects 7 arguments");
    return nullptr;
  }
  float* heap;
  size_t length;
  if (!heapArg(env, argv[0], &heap, &length)) return nullptr;
  bool ta, tb;
  NAPI_OK(napi_get_value_bool(env, argv[1], &ta));
  NAPI_OK(napi_get_value_bool(env, argv[2], &tb));
  int64_t M, N, K;
  if (!int64Arg(env, argv[3], &M) || !int64Arg(env, argv[4], &N) || !int64Arg(env, argv[5], &K)) return nullptr;
  napi_typedarray_type type;
  size_t count;
  void* raw;
  napi_value buffer;
  size_t byteOffset;
  if (napi_get_typedarray_info(env, argv[6], &type, &count, &raw, &buffer, &byteOffset) != napi_ok ||
      type != napi_int32_array || count % 3 != 0) {
    napi_throw_type_error(env, nullptr, "vmoe_blas.sgemmOffsets: offsets must be an Int32Array of triples");
    return nullptr;
  }
  if (M < 0 || N < 0 || K < 0 || M > INT32_MAX || N > INT32_MAX || K > INT32_MAX) {
    napi_throw_range_error(env, nullptr, "vmoe_blas.sgemmOffsets: bad dimensions");
    return nullptr;
  }
  const int32_t* off = static_cast<const int32_t*>(raw);
  for (size_t i = 0; i < count; i += 3) {
    if (!inRange(env, off[i], M * K, length, "vmoe_blas.sgemmOffsets: A outside the heap") ||
        !inRange(env, off[i + 1], K * N, length, "vmoe_blas.sgemmOffsets: B outside the heap") ||
        !inRange(env, off[i + 2], M * N, length, "vmoe_blas.sgemmOffsets: C outside the heap")) {
      return nullptr;
    }
  }
  for (size_t i = 0; i < count; i += 3) {
    gemm(ta, tb, static_cast<int>(M), static_cast<int>(N), static_cast<int>(K), heap + off[i], heap + off[i + 1],
         heap + off[i + 2], nullptr, false);
  }
  return nullptr;
}

// A typed-array argument of element type `want`: its data and length.
template <typename T>
bool typedArrayArg(napi_env env, napi_value v, napi_typedarray_type want, const T** data, size_t* length, const char* what) {
  napi_typedarray_type type;
  void* raw;
  napi_value buffer;
  size_t byteOffset;
  if (napi_get_typedarray_info(env, v, &type, length, &raw, &buffer, &byteOffset) != napi_ok || type != want) {
    napi_throw_type_error(env, nullptr, what);
    return false;
  }
  *data = static_cast<const T*>(raw);
  return true;
}

bool int32ArrayArg(napi_env env, napi_value v, const int32_t** data, size_t* length, const char* what) {
  return typedArrayArg(env, v, napi_int32_array, data, length, what);
}

bool float64ArrayArg(napi_env env, napi_value v, const double** data, size_t* length, const char* what) {
  return typedArrayArg(env, v, napi_float64_array, data, length, what);
}

// copyStrided(heap, srcOff, dstOff, shape: Int32Array, srcStrides: Int32Array)
// dst (contiguous, row-major `shape`) = the strided view of src: a slice of any rank.
napi_value CopyStrided(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  if (argc != 5) {
    napi_throw_type_error(env, nullptr, "vmoe_blas.copyStrided expects 5 arguments");
    return nullptr;
  }
  float* heap;
  size_t length;
  if (!heapArg(env, argv[0], &heap, &length)) return nullptr;
  int64_t src, dst;
  if (!int64Arg(env, argv[1], &src) || !int64Arg(env, argv[2], &dst)) return nullptr;
  const int32_t *shape, *strides;
  size_t rank, rank2;
  if (!int32ArrayArg(env, argv[3], &shape, &rank, "vmoe_blas.copyStrided: shape must be an Int32Array") ||
      !int32ArrayArg(env, argv[4], &strides, &rank2, "vmoe_blas.copyStrided: strides must be an Int32Array")) {
    return nullptr;
  }
  if (rank != rank2 || rank == 0 || rank > 8) {
    napi_throw_range_error(env, nullptr, "vmoe_blas.copyStrided: shape and strides must have the same rank, 1 to 8");
    return nullptr;
  }
  int64_t total = 1, last = 0;
  for (size_t d = 0; d < rank; d++) {
    if (shape[d] < 0 || strides[d] < 0) {
      napi_throw_range_error(env, nullptr, "vmoe_blas.copyStrided: negative shape or stride");
      return nullptr;
    }
    total *= shape[d];
    last += static_cast<int64_t>(shape[d] > 0 ? shape[d] - 1 : 0) * strides[d];
  }
  if (total == 0) return nullptr;
  if (!inRange(env, src, last + 1, length, "vmoe_blas.copyStrided: source outside the heap") ||
      !inRange(env, dst, total, length, "vmoe_blas.copyStrided: destination outside the heap")) {
    return nullptr;
  }
  // Innermost dimension copied as a run (memcpy when its stride is 1).
  const int inner = shape[rank - 1];
  const int innerStride = strides[rank - 1];
  const int64_t rows = total / inner;
  int64_t idx[8] = {0};
  float* out = heap + dst;
  for (int64_t r = 0; r < rows; r++) {
    int64_t base = src;
    for (size_t d = 0; d + 1 < rank; d++) base += idx[d] * strides[d];
    const float* in = heap + base;
    if (innerStride == 1) {
      std::memcpy(out, in, sizeof(float) * inner);
    } else {
      for (int j = 0; j < inner; j++) out[j] = in[static_cast<int64_t>(j) * innerStride];
    }
    out += inner;
    for (int d = static_cast<int>(rank) - 2; d >= 0; d--) {
      if (++idx[d] < shape[d]) break;
      idx[d] = 0;
    }
  }
  return nullptr;
}

inline int32_t bitsOf(float f) {
  int32_t i;
  std::memcpy(&i, &f, sizeof i);
  return i;
}
inline float fromBits(int32_t i) {
  float f;
  std::memcpy(&f, &i, sizeof f);
  return f;
}

// e^x for x in [-87, 88] (tanh needs [0, 18], softmax (-87, 0]): 2^(n+f) with n the nearest
// integer, |f| <= 1/2; 2^f from its Taylor series to degree 7 (truncation < 1e-8); 2^n built as
// exponent bits (n in [-126, 127] stays a normal number). Adding 1.5·2^23 rounds to an integer
// held in the low mantissa bits. Branch-free, so the loops below vectorise (built with
// -fno-trapping-math so the selects need no branch).
inline float expSmall(float x) {
  const float magic = 12582912.0f;
  const float t = x * 1.44269504088896341f;
  const float shifted = t + magic;
  const float n = shifted - magic;
  const float u = (t - n) * 0.693147180559945309f;
  const float p = 1.0f + u * (1.0f + u * (0.5f + u * (1.0f / 6 + u * (1.0f / 24 + u * (1.0f / 120 + u * (1.0f / 720 + u * (1.0f / 5040)))))));
  return p * fromBits((bitsOf(shifted) - bitsOf(magic) + 127) << 23);
}

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

// tanh(heap, srcOff, dstOff, n)
napi_value Tanh(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  if (argc != 4) {
    napi_throw_type_error(env, nullptr, "vmoe_blas.tanh expects 4 arguments");
    return nullptr;
  }
  float* heap;
  size_t length;
  if (!heapArg(env, argv[0], &heap, &length)) return nullptr;
  int64_t src, dst, n;
  if (!int64Arg(env, argv[1], &src) || !int64Arg(env, argv[2], &dst) || !int64Arg(env, argv[3], &n)) return nullptr;
  if (!inRange(env, src, n, length, "vmoe_blas.tanh: source outside the heap") ||
      !inRange(env, dst, n, length, "vmoe_blas.tanh: destination outside the heap")) {
    return nullptr;
  }
  tanhLoop(heap + src, heap + dst, n);
  return nullptr;
}

// ---- Fused elementwise and normalisation kernels --------------------------------------
// GELU (tanh form), LayerNorm and softmax with their gradients, each one pass over the data
// instead of the 4–15 wasm kernels (and as many heap round trips) their composed forms take.

bool checkArgc(napi_env env, napi_callback_info info, size_t want, napi_value* argv, const char* message) {
  size_t argc = want;
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok) {
    napi_throw_error(env, nullptr, "vmoe_blas: N-API call failed: napi_get_cb_info");
    return false;
  }
  if (argc != want) {
    napi_throw_type_error(env, nullptr, message);
    return false;
  }
  return true;
}

// Reads argv[first..first+count) as integers into out.
bool int64Args(napi_env env, const napi_value* argv, int first, int count, int64_t* out) {
  for (int i = 0; i < count; i++) {
    if (!int64Arg(env, argv[first + i], &out[i])) return false;
  }
  return true;
}

// The prologue every heap kernel shares: exactly `want` arguments, argv[0] the
// wasm heap (a Float32Array), argv[1 .. 1+nInts) integers (offsets and sizes).
bool heapKernelArgs(napi_env env, napi_callback_info info, size_t want, napi_value* argv, const char* message,
                    float** heap, size_t* length, int nInts, int64_t* v) {
  return checkArgc(env, info, want, argv, message) && heapArg(env, argv[0], heap, length) &&
         int64Args(env, argv, 1, nInts, v);
}
// The formula of src/vmoe/layers.ts gelu(), in its order of operations:
// y = (x/2)(1 + tanh(c (x + 0.044715 x^3))), c = sqrt(2/pi).
constexpr float kGeluC = 0.7978845608028654f;
constexpr float kGeluA = 0.044715f;

__attribute__((target_clones("avx512f", "avx2", "default")))
void geluLoop(const float* __restrict x, float* __restrict y, int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    const float v = x[i];
    const float t = tanhOne((v + v * v * v * kGeluA) * kGeluC);
    y[i] = v * 0.5f * (t + 1.0f);
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
  loop(heap + src, heap + dst, n);
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
  loop(heap + dy, heap + x, heap + dx, n);
  return nullptr;
}

// gelu(heap, srcOff, dstOff, n), geluGrad(heap, dyOff, xOff, dxOff, n)
napi_value Gelu(napi_env env, napi_callback_info info) {
  return unaryEntry<geluLoop>(env, info, "vmoe_blas.gelu: an operand lies outside the heap");
}
napi_value GeluGrad(napi_env env, napi_callback_info info) {
  return unaryGradEntry<geluGradLoop>(env, info, "vmoe_blas.geluGrad: an operand lies outside the heap");
}


// Σ x[0..n) in kLanes independent float partial sums (one vector register), combined in
// double: vectorises, where one serial accumulator would not (no reassociation allowed).
constexpr int kLanes = 16;
inline double laneSum(const float* x, int64_t n) {
  float acc[kLanes] = {};
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes) {
    for (int l = 0; l < kLanes; l++) acc[l] += x[j + l];
  }
  // Pairwise combine of the lanes (vector shuffles, no serial chain: short rows, e.g. attention's, are dominated by it).
  for (int w = kLanes / 2; w >= 1; w /= 2) {
    for (int l = 0; l < w; l++) acc[l] += acc[l + w];
  }
  double s = acc[0];
  for (; j < n; j++) s += x[j];
  return s;
}

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

// Validates (heap, offsets…, rows, cols, eps) shared by layerNorm and layerNormGrad: rows × cols
// blocks at the offsets in rowBlocks, cols-long vectors at those in vectors.
bool layerNormShapes(napi_env env, size_t length, int64_t rows, int64_t cols, const int64_t* rowBlocks, int numRowBlocks,
                     const int64_t* vectors, int numVectors, const char* what) {
  if (rows < 0 || cols < 1 || (rows > 0 && cols > INT64_MAX / rows)) {
    napi_throw_range_error(env, nullptr, what);
    return false;
  }
  for (int i = 0; i < numRowBlocks; i++) {
    if (!inRange(env, rowBlocks[i], rows * cols, length, what)) return false;
  }
  for (int i = 0; i < numVectors; i++) {
    if (!inRange(env, vectors[i], cols, length, what)) return false;
  }
  return true;
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
  layerNormRows(heap + xOff, heap + scaleOff, heap + biasOff, heap + yOff, rows, cols, static_cast<float>(epsArg));
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
  const size_t n = static_cast<size_t>(cols);
  std::vector<double> dscale(n, 0.0), dbias(n, 0.0);
  std::vector<float> g(n), xhat(n);
  layerNormGradRows(heap + dyOff, heap + xOff, heap + scaleOff, heap + dxOff, dscale.data(), dbias.data(), g.data(),
                    xhat.data(), rows, cols, static_cast<float>(epsArg));
  float* dscaleOut = heap + dscaleOff;
  float* dbiasOut = heap + dbiasOff;
  for (int64_t j = 0; j < cols; j++) {
    dscaleOut[j] = static_cast<float>(dscale[j]);
    dbiasOut[j] = static_cast<float>(dbias[j]);
  }
  return nullptr;
}

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

// Pairwise (tree) reductions over a fixed number of values: short independent chains the
// compiler turns into vector shuffles, where a running accumulator would be one serial chain.
template <int C>
inline float treeMax(const float* v) {
  if constexpr (C == 1) {
    return v[0];
  } else {
    const float a = treeMax<C / 2>(v), b = treeMax<C / 2>(v + C / 2);
    return b > a ? b : a;
  }
}
template <int C>
inline float treeSum(const float* v) {
  if constexpr (C == 1) {
    return v[0];
  } else {
    return treeSum<C / 2>(v) + treeSum<C / 2>(v + C / 2);
  }
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

bool rowsCols(napi_env env, int64_t rows, int64_t cols, const char* what) {
  if (rows < 0 || cols < 1 || (rows > 0 && cols > INT64_MAX / rows)) {
    napi_throw_range_error(env, nullptr, what);
    return false;
  }
  return true;
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

// Multi-head self-attention core on the fused qkv projection, without transposes:
// qkv is row-major (batch·T, 3H) with columns [q | k | v], each head-major (head h owns
// columns h·hd … h·hd+hd−1 of its third), H = heads·hd. Per (image, head) the products
// read q, k, v in place with leading dimension 3H (sgemm strides) and write the output
// into its head's columns of out (batch·T, H):
//   P = softmax(scale · q kᵀ) (saved in probs (batch·heads, T, T)), out_h = P v.
void attentionForward(const float* qkv, float* out, float* probs, int64_t batch, int T, int heads, int hd, float scale) {
  const int H = heads * hd, ld = 3 * H;
  std::vector<float> scores(static_cast<size_t>(T) * T);
  for (int64_t b = 0; b < batch; b++) {
    const float* base = qkv + b * T * ld;
    for (int h = 0; h < heads; h++) {
      float* p = probs + (b * heads + h) * static_cast<int64_t>(T) * T;
      const float* q = base + h * hd;
      const float* k = base + H + h * hd;
      const float* v = base + 2 * H + h * hd;
      sgemmRowMajor(false, true, T, T, hd, scale, q, ld, k, ld, 0.0f, scores.data(), T);
      softmaxRows(scores.data(), p, T, T);
      sgemmRowMajor(false, false, T, hd, T, 1.0f, p, T, v, ld, 0.0f, out + b * T * H + h * hd, H);
    }
  }
}

// The gradient of attentionForward: dqkv (batch·T, 3H) from dy (batch·T, H), qkv and the saved probs.
//   dP = dy_h vᵀ, dv = Pᵀ dy_h, dS = P ⊙ (dP − rowsum(dP ⊙ P)), dq = scale · dS k, dk = scale · dSᵀ q.
void attentionBackward(const float* dy, const float* qkv, const float* probs, float* dqkv, int64_t batch, int T, int heads,
                       int hd, float scale) {
  const int H = heads * hd, ld = 3 * H;
  std::vector<float> dp(static_cast<size_t>(T) * T), ds(static_cast<size_t>(T) * T);
  for (int64_t b = 0; b < batch; b++) {
    const float* base = qkv + b * T * ld;
    float* dbase = dqkv + b * T * ld;
    for (int h = 0; h < heads; h++) {
      const float* p = probs + (b * heads + h) * static_cast<int64_t>(T) * T;
      const float* g = dy + b * T * H + h * hd;
      const float* q = base + h * hd;
      const float* k = base + H + h * hd;
      const float* v = base + 2 * H + h * hd;
      sgemmRowMajor(false, true, T, T, hd, 1.0f, g, H, v, ld, 0.0f, dp.data(), T);
      sgemmRowMajor(true, false, T, hd, T, 1.0f, p, T, g, H, 0.0f, dbase + 2 * H + h * hd, ld);
      softmaxGradRows(dp.data(), p, ds.data(), T, T);
      sgemmRowMajor(false, false, T, hd, T, scale, ds.data(), T, k, ld, 0.0f, dbase + h * hd, ld);
      sgemmRowMajor(true, false, T, hd, T, scale, ds.data(), T, q, ld, 0.0f, dbase + H + h * hd, ld);
    }
  }
}

bool attentionDims(napi_env env, int64_t batch, int64_t T, int64_t heads, int64_t hd) {
  if (batch < 0 || T < 1 || heads < 1 || hd < 1 || T > 65536 || heads * hd > (INT32_MAX / 3) ||
      (batch > 0 && T * 3 * heads * hd > INT64_MAX / batch)) {
    napi_throw_range_error(env, nullptr, "vmoe_blas.attention: bad dimensions");
    return false;
  }
  return true;
}

// attention(heap, qkvOff, outOff, probsOff, batch, T, heads, hd, scale)
napi_value Attention(napi_env env, napi_callback_info info) {
  napi_value argv[9];
  float* heap;
  size_t length;
  int64_t v[7];
  if (!heapKernelArgs(env, info, 9, argv, "vmoe_blas.attention expects 9 arguments", &heap, &length, 7, v)) return nullptr;
  double scale;
  NAPI_OK(napi_get_value_double(env, argv[8], &scale));
  const int64_t qkv = v[0], out = v[1], probs = v[2], batch = v[3], T = v[4], heads = v[5], hd = v[6];
  if (!attentionDims(env, batch, T, heads, hd) ||
      !inRange(env, qkv, batch * T * 3 * heads * hd, length, "vmoe_blas.attention: qkv outside the heap") ||
      !inRange(env, out, batch * T * heads * hd, length, "vmoe_blas.attention: out outside the heap") ||
      !inRange(env, probs, batch * heads * T * T, length, "vmoe_blas.attention: probs outside the heap")) {
    return nullptr;
  }
  attentionForward(heap + qkv, heap + out, heap + probs, batch, static_cast<int>(T), static_cast<int>(heads),
                   static_cast<int>(hd), static_cast<float>(scale));
  return nullptr;
}

// attentionGrad(heap, dyOff, qkvOff, probsOff, dqkvOff, batch, T, heads, hd, scale)
napi_value AttentionGrad(napi_env env, napi_callback_info info) {
  napi_value argv[10];
  float* heap;
  size_t length;
  int64_t v[8];
  if (!heapKernelArgs(env, info, 10, argv, "vmoe_blas.attentionGrad expects 10 arguments", &heap, &length, 8, v)) return nullptr;
  double scale;
  NAPI_OK(napi_get_value_double(env, argv[9], &scale));
  const int64_t dy = v[0], qkv = v[1], probs = v[2], dqkv = v[3], batch = v[4], T = v[5], heads = v[6], hd = v[7];
  if (!attentionDims(env, batch, T, heads, hd) ||
      !inRange(env, dy, batch * T * heads * hd, length, "vmoe_blas.attentionGrad: dy outside the heap") ||
      !inRange(env, qkv, batch * T * 3 * heads * hd, length, "vmoe_blas.attentionGrad: qkv outside the heap") ||
      !inRange(env, probs, batch * heads * T * T, length, "vmoe_blas.attentionGrad: probs outside the heap") ||
      !inRange(env, dqkv, batch * T * 3 * heads * hd, length, "vmoe_blas.attentionGrad: dqkv outside the heap")) {
    return nullptr;
  }
  attentionBackward(heap + dy, heap + qkv, heap + probs, heap + dqkv, batch, static_cast<int>(T), static_cast<int>(heads),
                    static_cast<int>(hd), static_cast<float>(scale));
  return nullptr;
}

// out[j] = scale · Σ_i x[i, j] over a row-major (rows, cols) block, accumulated in double.
__attribute__((target_clones("avx512f", "avx2", "default")))
void columnSums(const float* x, int64_t rows, int64_t cols, double scale, float* out) {
  std::vector<double> acc(static_cast<size_t>(cols), 0.0);
  for (int64_t i = 0; i < rows; i++) {
    const float* row = x + i * cols;
    for (int64_t j = 0; j < cols; j++) acc[j] += row[j];
  }
  for (int64_t j = 0; j < cols; j++) out[j] = static_cast<float>(acc[j] * scale);
}

// reduceMiddle(heap, srcOff, dstOff, outer, mid, inner, scale)
// x viewed as row-major (outer, mid, inner): dst[o, j] = scale · Σ_m x[o, m, j], in double.
// A sum (scale 1) or mean (1/mid) over any contiguous block of axes, without the transpose
// tfjs's wasm Sum/Mean make when the reduced axes are not the innermost ones.
napi_value ReduceMiddle(napi_env env, napi_callback_info info) {
  napi_value argv[7];
  float* heap;
  size_t length;
  int64_t v[5];
  if (!heapKernelArgs(env, info, 7, argv, "vmoe_blas.reduceMiddle expects 7 arguments", &heap, &length, 5, v)) return nullptr;
  double scale;
  NAPI_OK(napi_get_value_double(env, argv[6], &scale));
  const int64_t src = v[0], dst = v[1], outer = v[2], mid = v[3], inner = v[4];
  if (outer < 0 || mid < 0 || inner < 0 || (outer > 0 && inner > INT64_MAX / outer) ||
      (outer * inner > 0 && mid > INT64_MAX / (outer * inner))) {
    napi_throw_range_error(env, nullptr, "vmoe_blas.reduceMiddle: bad dimensions");
    return nullptr;
  }
  if (!inRange(env, src, outer * mid * inner, length, "vmoe_blas.reduceMiddle: source outside the heap") ||
      !inRange(env, dst, outer * inner, length, "vmoe_blas.reduceMiddle: destination outside the heap")) {
    return nullptr;
  }
  if (inner == 1) {
    for (int64_t o = 0; o < outer; o++) heap[dst + o] = static_cast<float>(laneSum(heap + src + o * mid, mid) * scale);
    return nullptr;
  }
  for (int64_t o = 0; o < outer; o++) columnSums(heap + src + o * mid * inner, mid, inner, scale, heap + dst + o * inner);
  return nullptr;
}

// ---- Optimiser -----------------------------------------------------------------------
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
  napi_typedarray_type type;
  size_t count;
  void* raw;
  napi_value buffer;
  size_t byteOffset;
  if (napi_get_typedarray_info(env, argv[9], &type, &count, &raw, &buffer, &byteOffset) != napi_ok ||
      type != napi_float64_array || count != kAdamCoefficients) {
    napi_throw_type_error(env, nullptr, "vmoe_blas.adam: coefficients must be a Float64Array of 9");
    return nullptr;
  }
  const double* coefficients = static_cast<const double*>(raw);
  float c[kAdamCoefficients];
  for (int i = 0; i < kAdamCoefficients; i++) {
    if (!std::isfinite(coefficients[i])) {
      napi_throw_range_error(env, nullptr, "vmoe_blas.adam: coefficients must be finite");
      return nullptr;
    }
    c[i] = static_cast<float>(coefficients[i]);
  }
  adamLoop(heap + v[0], heap + v[1], heap + v[2], heap + v[3], heap + v[4], heap + v[5], heap + v[6], n, c,
           coefficients[8] != 1.0, coefficients[7] != 0.0);
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

// ---- MoE dispatch and combine ----------------------------------------------------------
// Row indices are 1-based int32 (0: an empty expert-buffer slot), read from the same heap.
// They replace the padded concat, GatherNd, ScatterNd and the gate multiply of the composed
// form (and those ops' gradients) with one pass each.

// Every index in idx[0, m) in [0, max]; throws otherwise.
bool indicesInRange(napi_env env, const int32_t* idx, int64_t m, int64_t max, const char* what) {
  for (int64_t i = 0; i < m; i++) {
    if (idx[i] < 0 || idx[i] > max) {
      napi_throw_range_error(env, nullptr, what);
      return false;
    }
  }
  return true;
}

const int32_t* intsAt(float* heap, int64_t off) { return reinterpret_cast<const int32_t*>(heap + off); }

// combineRows(heap, outOff, gatesOff, tokOff, gateOff, yOff, numTokens, numGates, m, h):
// y (numTokens, h) = Σ_i gates[gate[i] - 1] · out[i] into row tok[i] - 1 (rows with tok 0 are dropped;
// gate 0 reads a zero gate).
napi_value CombineRows(napi_env env, napi_callback_info info) {
  napi_value argv[10];
  float* heap;
  size_t length;
  int64_t v[9];
  if (!heapKernelArgs(env, info, 10, argv, "vmoe_blas.combineRows expects 10 arguments", &heap, &length, 9, v)) return nullptr;
  const int64_t out = v[0], gates = v[1], tok = v[2], gate = v[3], y = v[4], numTokens = v[5], numGates = v[6], m = v[7], h = v[8];
  if (numTokens < 0 || numGates < 0 || m < 0 || h < 0 ||
      !inRange(env, out, m * h, length, "vmoe_blas.combineRows: out outside the heap") ||
      !inRange(env, gates, numGates, length, "vmoe_blas.combineRows: gates outside the heap") ||
      !inRange(env, tok, m, length, "vmoe_blas.combineRows: token indices outside the heap") ||
      !inRange(env, gate, m, length, "vmoe_blas.combineRows: gate indices outside the heap") ||
      !inRange(env, y, numTokens * h, length, "vmoe_blas.combineRows: y outside the heap") ||
      !indicesInRange(env, intsAt(heap, tok), m, numTokens, "vmoe_blas.combineRows: token index out of range") ||
      !indicesInRange(env, intsAt(heap, gate), m, numGates, "vmoe_blas.combineRows: gate index out of range")) {
    return nullptr;
  }
  const int32_t* tk = intsAt(heap, tok);
  const int32_t* gt = intsAt(heap, gate);
  float* yy = heap + y;
  std::memset(yy, 0, sizeof(float) * numTokens * h);
  for (int64_t i = 0; i < m; i++) {
    if (tk[i] == 0 || gt[i] == 0) continue;
    const float g = heap[gates + gt[i] - 1];
    float* dst = yy + (tk[i] - 1) * h;
    const float* row = heap + out + i * h;
    for (int64_t j = 0; j < h; j++) dst[j] += g * row[j];
  }
  return nullptr;
}

// d = g · dy and returns dy · row, over h values: 16 partial sums in float (one vector
// register), combined pairwise; a tail shorter than 16 is added in double.
__attribute__((target_clones("avx512f", "avx2", "default")))
float scaleAndDot(const float* __restrict dy, const float* __restrict row, float* __restrict d, float g, int64_t h) {
  float acc[16] = {0};
  int64_t j = 0;
  for (; j + 16 <= h; j += 16) {
    for (int l = 0; l < 16; l++) {
      d[j + l] = g * dy[j + l];
      acc[l] += dy[j + l] * row[j + l];
    }
  }
  // Lanes combined pairwise, as laneSum does: a serial chain over the 16 lanes cost more than the row itself.
  double dot = treeSum<16>(acc);
  for (; j < h; j++) {
    d[j] = g * dy[j];
    dot += static_cast<double>(dy[j]) * row[j];
  }
  return static_cast<float>(dot);
}

// combineRowsGrad(heap, dyOff, outOff, gatesOff, tokOff, gateOff, dOutOff, dGatesOff, numTokens, numGates, m, h):
// dOut[i] = gates[gate[i] - 1] · dy[tok[i] - 1] (zeros where either index is 0);
// dGates (numGates) = Σ_i dy[tok[i] - 1] · out[i] into entry gate[i] - 1.
napi_value CombineRowsGrad(napi_env env, napi_callback_info info) {
  napi_value argv[12];
  float* heap;
  size_t length;
  int64_t v[11];
  if (!heapKernelArgs(env, info, 12, argv, "vmoe_blas.combineRowsGrad expects 12 arguments", &heap, &length, 11, v)) return nullptr;
  const int64_t dy = v[0], out = v[1], gates = v[2], tok = v[3], gate = v[4], dOut = v[5], dGates = v[6];
  const int64_t numTokens = v[7], numGates = v[8], m = v[9], h = v[10];
  if (numTokens < 0 || numGates < 0 || m < 0 || h < 0 ||
      !inRange(env, dy, numTokens * h, length, "vmoe_blas.combineRowsGrad: dy outside the heap") ||
      !inRange(env, out, m * h, length, "vmoe_blas.combineRowsGrad: out outside the heap") ||
      !inRange(env, gates, numGates, length, "vmoe_blas.combineRowsGrad: gates outside the heap") ||
      !inRange(env, tok, m, length, "vmoe_blas.combineRowsGrad: token indices outside the heap") ||
      !inRange(env, gate, m, length, "vmoe_blas.combineRowsGrad: gate indices outside the heap") ||
      !inRange(env, dOut, m * h, length, "vmoe_blas.combineRowsGrad: dOut outside the heap") ||
      !inRange(env, dGates, numGates, length, "vmoe_blas.combineRowsGrad: dGates outside the heap") ||
      !indicesInRange(env, intsAt(heap, tok), m, numTokens, "vmoe_blas.combineRowsGrad: token index out of range") ||
      !indicesInRange(env, intsAt(heap, gate), m, numGates, "vmoe_blas.combineRowsGrad: gate index out of range")) {
    return nullptr;
  }
  const int32_t* tk = intsAt(heap, tok);
  const int32_t* gt = intsAt(heap, gate);
  float* dg = heap + dGates;
  std::memset(dg, 0, sizeof(float) * numGates);
  for (int64_t i = 0; i < m; i++) {
    float* d = heap + dOut + i * h;
    if (tk[i] == 0 || gt[i] == 0) {
      std::memset(d, 0, sizeof(float) * h);
      continue;
    }
    dg[gt[i] - 1] += scaleAndDot(heap + dy + (tk[i] - 1) * h, heap + out + i * h, d, heap[gates + gt[i] - 1], h);
  }
  return nullptr;
}

// ---- Expert products on packed rows -----------------------------------------------------
// Expert e's buffer rows (R of them) hold its routed tokens first: rows[e] of them, then empty
// slots. Products run over the filled rows only, so compute follows the tokens actually routed
// (empty capacity slots cost nothing); outputs and input gradients of empty rows are zero.

bool expertRows(napi_env env, const int32_t* rows, int64_t E, int64_t R) {
  for (int64_t e = 0; e < E; e++) {
    if (rows[e] < 0 || rows[e] > R) {
      napi_throw_range_error(env, nullptr, "vmoe_blas.expertDense: rows per expert must be in [0, R]");
      return false;
    }
  }
  return true;
}

// With tokens (tokensOff >= 0, (E·R) int32, 1-based, 0 for an empty slot), x is the
// (N, I) token matrix and expert e's row i is x[tokens[e·R + i] − 1]: the dispatch gather runs
// inside the product, one expert at a time into a buffer that stays in cache for its product,
// instead of as a separate (E·R, I) tensor; the gradient scatters dx back the same way.
bool expertTokens(napi_env env, const int32_t* tokens, const int32_t* rows, int64_t E, int64_t R, int64_t N) {
  for (int64_t e = 0; e < E; e++) {
    for (int64_t i = 0; i < rows[e]; i++) {
      const int32_t t = tokens[e * R + i];
      if (t < 1 || t > N) {
        napi_throw_range_error(env, nullptr, "vmoe_blas.expertDense: a filled row's token must be in [1, N]");
        return false;
      }
    }
  }
  return true;
}

// Rows x[tokens[i] − 1] for i < r into out (r, I).
void gatherTokens(const float* x, const int32_t* tokens, int64_t r, int64_t I, float* out) {
  for (int64_t i = 0; i < r; i++) std::memcpy(out + i * I, x + (tokens[i] - 1) * I, sizeof(float) * I);
}

// expertDense(heap, xOff, wOff, bOff (-1: none), rowsOff, tokensOff (-1: none), yOff, E, R, I, O, N):
// y_e[:rows_e] = x_e[:rows_e] w_e (+ b_e), y_e[rows_e:] = 0; x (E, R, I), or (N, I) with tokens;
// w (E, I, O), b (E, O), y (E, R, O).
napi_value ExpertDense(napi_env env, napi_callback_info info) {
  napi_value argv[12];
  float* heap;
  size_t length;
  int64_t v[11];
  if (!heapKernelArgs(env, info, 12, argv, "vmoe_blas.expertDense expects 12 arguments", &heap, &length, 11, v)) return nullptr;
  const int64_t x = v[0], w = v[1], b = v[2], rowsOff = v[3], tokOff = v[4], y = v[5], E = v[6], R = v[7], I = v[8], O = v[9], N = v[10];
  const bool gathered = tokOff >= 0;
  if (E < 0 || R < 0 || I < 0 || O < 0 || N < 0 || R > INT32_MAX || I > INT32_MAX || O > INT32_MAX ||
      !inRange(env, x, gathered ? N * I : E * R * I, length, "vmoe_blas.expertDense: x outside the heap") ||
      !inRange(env, w, E * I * O, length, "vmoe_blas.expertDense: w outside the heap") ||
      (b >= 0 && !inRange(env, b, E * O, length, "vmoe_blas.expertDense: b outside the heap")) ||
      !inRange(env, rowsOff, E, length, "vmoe_blas.expertDense: rows outside the heap") ||
      (gathered && !inRange(env, tokOff, E * R, length, "vmoe_blas.expertDense: tokens outside the heap")) ||
      !inRange(env, y, E * R * O, length, "vmoe_blas.expertDense: y outside the heap") ||
      !expertRows(env, intsAt(heap, rowsOff), E, R) ||
      (gathered && !expertTokens(env, intsAt(heap, tokOff), intsAt(heap, rowsOff), E, R, N))) {
    return nullptr;
  }
  const int32_t* rows = intsAt(heap, rowsOff);
  static thread_local std::vector<float> xs;
  for (int64_t e = 0; e < E; e++) {
    const int r = rows[e];
    float* ye = heap + y + e * R * O;
    const float* xe = heap + x + e * R * I;
    if (gathered && r > 0) {
      xs.resize(static_cast<size_t>(r) * I);
      gatherTokens(heap + x, intsAt(heap, tokOff) + e * R, r, I, xs.data());
      xe = xs.data();
    }
    if (r > 0) gemm(false, false, r, static_cast<int>(O), static_cast<int>(I), xe, heap + w + e * I * O, ye,
                    b >= 0 ? heap + b + e * O : nullptr, false);
    std::memset(ye + static_cast<int64_t>(r) * O, 0, sizeof(float) * (R - r) * O);
  }
  return nullptr;
}

// expertDenseGrad(heap, dyOff, xOff, wOff, rowsOff, tokensOff (-1: none), dxOff, dwOff, dbOff (-1: none), E, R, I, O, N):
// dx_e[:rows_e] = dy_e w_eᵀ (0 below), dw_e = x_e[:rows_e]ᵀ dy_e[:rows_e], db_e = Σ dy_e[:rows_e]; with tokens,
// x and dx are (N, I) and dx[t] = Σ over the rows holding token t (in expert, then row order).
napi_value ExpertDenseGrad(napi_env env, napi_callback_info info) {
  napi_value argv[14];
  float* heap;
  size_t length;
  int64_t v[13];
  if (!heapKernelArgs(env, info, 14, argv, "vmoe_blas.expertDenseGrad expects 14 arguments", &heap, &length, 13, v)) return nullptr;
  const int64_t dy = v[0], x = v[1], w = v[2], rowsOff = v[3], tokOff = v[4], dx = v[5], dw = v[6], db = v[7];
  const int64_t E = v[8], R = v[9], I = v[10], O = v[11], N = v[12];
  const bool gathered = tokOff >= 0;
  const int64_t xSize = gathered ? N * I : E * R * I;
  if (E < 0 || R < 0 || I < 0 || O < 0 || N < 0 || R > INT32_MAX || I > INT32_MAX || O > INT32_MAX ||
      !inRange(env, dy, E * R * O, length, "vmoe_blas.expertDenseGrad: dy outside the heap") ||
      !inRange(env, x, xSize, length, "vmoe_blas.expertDenseGrad: x outside the heap") ||
      !inRange(env, w, E * I * O, length, "vmoe_blas.expertDenseGrad: w outside the heap") ||
      !inRange(env, rowsOff, E, length, "vmoe_blas.expertDenseGrad: rows outside the heap") ||
      (gathered && !inRange(env, tokOff, E * R, length, "vmoe_blas.expertDenseGrad: tokens outside the heap")) ||
      !inRange(env, dx, xSize, length, "vmoe_blas.expertDenseGrad: dx outside the heap") ||
      !inRange(env, dw, E * I * O, length, "vmoe_blas.expertDenseGrad: dw outside the heap") ||
      (db >= 0 && !inRange(env, db, E * O, length, "vmoe_blas.expertDenseGrad: db outside the heap")) ||
      !expertRows(env, intsAt(heap, rowsOff), E, R) ||
      (gathered && !expertTokens(env, intsAt(heap, tokOff), intsAt(heap, rowsOff), E, R, N))) {
    return nullptr;
  }
  const int32_t* rows = intsAt(heap, rowsOff);
  static thread_local std::vector<float> xs, dxs;
  if (gathered) std::memset(heap + dx, 0, sizeof(float) * N * I);
  for (int64_t e = 0; e < E; e++) {
    const int r = rows[e];
    const float* dye = heap + dy + e * R * O;
    const float* xe = heap + x + e * R * I;
    float* dxe = heap + dx + e * R * I;
    float* dwe = heap + dw + e * I * O;
    const int32_t* tok = gathered ? intsAt(heap, tokOff) + e * R : nullptr;
    if (gathered && r > 0) {
      xs.resize(static_cast<size_t>(r) * I);
      dxs.resize(static_cast<size_t>(r) * I);
      gatherTokens(heap + x, tok, r, I, xs.data());
      xe = xs.data();
      dxe = dxs.data();
    }
    if (r > 0) {
      gemm(false, true, r, static_cast<int>(I), static_cast<int>(O), dye, heap + w + e * I * O, dxe, nullptr, false);
      gemm(true, false, static_cast<int>(I), static_cast<int>(O), r, xe, dye, dwe, nullptr, false);
    } else {
      std::memset(dwe, 0, sizeof(float) * I * O);
    }
    if (gathered) {
      for (int64_t i = 0; i < r; i++) {
        float* dst = heap + dx + (tok[i] - 1) * I;
        const float* src = dxe + i * I;
        for (int64_t j = 0; j < I; j++) dst[j] += src[j];
      }
    } else {
      std::memset(dxe + static_cast<int64_t>(r) * I, 0, sizeof(float) * (R - r) * I);
    }
    if (db >= 0) columnSums(dye, r, O, 1.0, heap + db + e * O);
  }
  return nullptr;
}

// ---- Router auxiliary losses (importance and load) with their gradient --------------------
// Mirrors routerAuxLosses in src/vmoe/aux-losses.ts (the reference, tested against central
// differences): per routing group and E³ member, CV² of the member's expert importances
// (column sums of the clean gates) and loads (mean over its tokens of
// P = ½ erfc((thr − logit)/(σ√2)), thr the token's K-th noisy logit), averaged; the gradient
// goes through the softmax (importance) and through both logit and threshold (load).

// erfc(x) to ~1e-7 relative (the Chebyshev fit of Numerical Recipes §6.2, as erfcFast in
// src/vmoe/aux-losses.ts); exponent clamped to expSmall's range (erfc < 1e-37 there).
inline float erfcOne(float x) {
  const float z = fromBits(bitsOf(x) & 0x7fffffff);
  const float t = 1.0f / (1.0f + 0.5f * z);
  float e = -z * z - 1.26551223f + t * (1.00002368f + t * (0.37409196f + t * (0.09678418f + t * (-0.18628806f + t * (0.27886807f
      + t * (-1.13520398f + t * (1.48851587f + t * (-0.82215223f + t * 0.17087277f))))))));
  e = e < -87.0f ? -87.0f : e;
  const float r = t * expSmall(e);
  return x >= 0.0f ? r : 2.0f - r;
}

// p = ½ erfc(z) and dpdz = −e^{−z²}/√π over n values.
__attribute__((target_clones("avx512f", "avx2", "default")))
void loadTermsLoop(const float* __restrict z, float* __restrict p, float* __restrict dpdz, int64_t n) {
  constexpr float kOneOverSqrtPi = 0.5641895835477563f;
  for (int64_t i = 0; i < n; i++) {
    const float v = z[i];
    p[i] = 0.5f * erfcOne(v);
    float a = -v * v;
    a = a < -87.0f ? -87.0f : a;
    dpdz[i] = -kOneOverSqrtPi * expSmall(a);
  }
}

// Mean and population variance of n values.
void moments(const double* v, int n, double* mean, double* var) {
  double m = 0, s = 0;
  for (int i = 0; i < n; i++) m += v[i];
  m /= n;
  for (int i = 0; i < n; i++) s += (v[i] - m) * (v[i] - m);
  *mean = m;
  *var = s / n;
}

// CV² = var/(mean² + 1e-20), as cv2 in src/vmoe/aux-losses.ts.
double cv2Of(const double* v, int n) {
  double mean, var;
  moments(v, n, &mean, &var);
  return var / (mean * mean + 1e-20);
}

// out = scale · ∂cv2/∂v.
void cv2GradOf(const double* v, int n, double scale, double* out) {
  double mean, var;
  moments(v, n, &mean, &var);
  const double den = mean * mean + 1e-20;
  for (int i = 0; i < n; i++) out[i] = scale * ((2.0 / n) * (v[i] - mean) / den - var * 2.0 * mean / n / (den * den));
}

// The per-(group, member) part of routerAux: importances and loads, their CV² and the gradient
// rows. Vectorised builds: the per-token loops run over the member's E/M experts in double.
__attribute__((target_clones("avx512f", "avx2", "default")))
void routerAuxGroups(const float* gates, const float* pbuf, const float* dbuf, const int32_t* kth, const double* sizes, size_t numGroups,
                     int64_t E, int64_t M, float c, double wImp, double wLoad, float* dLogits, double* impOut, double* loadOut) {
  const int64_t Em = E / M, parts = static_cast<int64_t>(numGroups) * M;
  const bool withLoad = pbuf != nullptr;
  std::vector<double> imp(Em), load(Em), dImp(Em), dLoad(Em);
  double impSum = 0, loadSum = 0;
  int64_t start = 0;
  for (size_t g = 0; g < numGroups; g++) {
    const int64_t S = static_cast<int64_t>(sizes[g]), rows = S / M;
    for (int64_t m = 0; m < M; m++) {
      const int64_t col0 = m * Em;
      std::fill(imp.begin(), imp.end(), 0.0);
      std::fill(load.begin(), load.end(), 0.0);
      for (int64_t t = start + m; t < start + S; t += M) {
        for (int64_t e = 0; e < Em; e++) imp[e] += gates[t * E + col0 + e];
        if (withLoad) for (int64_t e = 0; e < Em; e++) load[e] += pbuf[t * Em + e];
      }
      impSum += cv2Of(imp.data(), static_cast<int>(Em));
      if (wImp > 0) cv2GradOf(imp.data(), static_cast<int>(Em), wImp / parts, dImp.data());
      else std::fill(dImp.begin(), dImp.end(), 0.0);
      if (withLoad) {
        for (int64_t e = 0; e < Em; e++) load[e] /= rows;
        loadSum += cv2Of(load.data(), static_cast<int>(Em));
      }
      const bool loadGrad = withLoad && wLoad > 0;
      if (loadGrad) cv2GradOf(load.data(), static_cast<int>(Em), wLoad / parts / rows, dLoad.data());
      // Per token: the importance term through the softmax, p_e (dImp_e − Σ p dImp), and the load
      // term, −dz_e on each own logit and +Σ dz on the threshold's (the K-th choice's) logit. Other
      // members' experts have p = 0 exactly (masked logits) and get 0.
      for (int64_t t = start + m; t < start + S; t += M) {
        const float* p = gates + t * E + col0;
        const float* dp = loadGrad ? dbuf + t * Em : nullptr;
        double s = 0, dThr = 0;
        for (int64_t e = 0; e < Em; e++) s += p[e] * dImp[e];
        if (loadGrad) {
          for (int64_t e = 0; e < Em; e++) dThr += dLoad[e] * dp[e] * c;  // ∂/∂thr of each term; ∂/∂logit is its negative
        }
        float* d = dLogits + t * E;
        std::fill(d, d + col0, 0.0f);
        std::fill(d + col0 + Em, d + E, 0.0f);
        const int64_t own = loadGrad ? kth[t] - col0 : -1;
        for (int64_t e = 0; e < Em; e++) {
          const double direct = loadGrad ? (e == own ? dThr : 0.0) - dLoad[e] * dp[e] * c : 0.0;
          d[col0 + e] = static_cast<float>(p[e] * (dImp[e] - s) + direct);
        }
      }
    }
    start += S;
  }
  *impOut = impSum;
  *loadOut = loadSum;
}

// routerAux(heap, logitsOff, noiseOff, kthOff, dLogitsOff, lossesOff, N, E, members, sigma, wImp, wLoad, groupSizes)
// noiseOff = kthOff = -1: no load loss; noise is what the router added to the logits. kth: int32 per token (the expert of its K-th choice).
// Writes dLogits (N, E) and losses [importance, load (NaN without noise), weighted].
napi_value RouterAux(napi_env env, napi_callback_info info) {
  napi_value argv[13];
  float* heap;
  size_t length;
  int64_t v[8];
  if (!heapKernelArgs(env, info, 13, argv, "vmoe_blas.routerAux expects 13 arguments", &heap, &length, 8, v)) return nullptr;
  double sigma, wImp, wLoad;
  NAPI_OK(napi_get_value_double(env, argv[9], &sigma));
  NAPI_OK(napi_get_value_double(env, argv[10], &wImp));
  NAPI_OK(napi_get_value_double(env, argv[11], &wLoad));
  const double* sizes;
  size_t numGroups;
  if (!float64ArrayArg(env, argv[12], &sizes, &numGroups, "vmoe_blas.routerAux: groupSizes must be a Float64Array")) return nullptr;
  const int64_t logitsOff = v[0], noiseOff = v[1], kthOff = v[2], dOff = v[3], lossOff = v[4];
  const int64_t N = v[5], E = v[6], M = v[7];
  const bool withLoad = noiseOff >= 0 && kthOff >= 0;
  if (N < 0 || E < 1 || M < 1 || E % M != 0 || E > 65536 || (withLoad && !(sigma > 0))) {
    napi_throw_range_error(env, nullptr, "vmoe_blas.routerAux: bad dimensions or sigma");
    return nullptr;
  }
  int64_t total = 0;
  for (size_t g = 0; g < numGroups; g++) {
    const double S = sizes[g];
    if (!(S >= 1) || S != std::floor(S) || static_cast<int64_t>(S) % M != 0) {
      napi_throw_range_error(env, nullptr, "vmoe_blas.routerAux: group sizes must be positive multiples of members");
      return nullptr;
    }
    total += static_cast<int64_t>(S);
  }
  if (total != N || !inRange(env, logitsOff, N * E, length, "vmoe_blas.routerAux: logits outside the heap") ||
      !inRange(env, dOff, N * E, length, "vmoe_blas.routerAux: dLogits outside the heap") ||
      !inRange(env, lossOff, 3, length, "vmoe_blas.routerAux: losses outside the heap") ||
      (withLoad && (!inRange(env, noiseOff, N * E, length, "vmoe_blas.routerAux: noise outside the heap") ||
                    !inRange(env, kthOff, N, length, "vmoe_blas.routerAux: kth outside the heap")))) {
    if (total != N) napi_throw_range_error(env, nullptr, "vmoe_blas.routerAux: group sizes do not add up to N");
    return nullptr;
  }
  const float* logits = heap + logitsOff;
  const float* noise = withLoad ? heap + noiseOff : nullptr;
  const int32_t* kth = withLoad ? intsAt(heap, kthOff) : nullptr;
  float* dLogits = heap + dOff;
  const int64_t Em = E / M;
  const float c = static_cast<float>(1.0 / (sigma * std::sqrt(2.0)));
  if (withLoad) {
    for (int64_t t = 0, m = 0; t < N; t++, m = m + 1 == M ? 0 : m + 1) {  // m = t mod M without a division per token
      if (kth[t] < m * Em || kth[t] >= (m + 1) * Em) {
        napi_throw_range_error(env, nullptr, "vmoe_blas.routerAux: a token's K-th expert is outside its member's experts");
        return nullptr;
      }
    }
  }
  // The clean gates softmax(logits), as VmoeSoftmax computes them; then z, P and ∂P/∂z for
  // each token's own experts, (N, E/M), the threshold being its K-th noisy logit (logit + noise
  // in float, as the router adds them).
  static thread_local std::vector<float> gbuf, zbuf, pbuf, dbuf;
  gbuf.resize(N * E);
  softmaxRows(logits, gbuf.data(), N, E);
  const float* gates = gbuf.data();
  if (withLoad) {
    zbuf.resize(N * Em);
    pbuf.resize(N * Em);
    dbuf.resize(N * Em);
    for (int64_t t = 0, m = 0; t < N; t++, m = m + 1 == M ? 0 : m + 1) {
      const float thr = logits[t * E + kth[t]] + noise[t * E + kth[t]];
      const float* l = logits + t * E + m * Em;
      for (int64_t e = 0; e < Em; e++) zbuf[t * Em + e] = (thr - l[e]) * c;
    }
    loadTermsLoop(zbuf.data(), pbuf.data(), dbuf.data(), N * Em);
  }
  const int64_t parts = static_cast<int64_t>(numGroups) * M;
  double impSum = 0, loadSum = 0;
  routerAuxGroups(gates, withLoad ? pbuf.data() : nullptr, withLoad ? dbuf.data() : nullptr, kth, sizes, numGroups, E, M, c, wImp,
                  wLoad, dLogits, &impSum, &loadSum);
  float* losses = heap + lossOff;
  const double importance = impSum / parts;
  const double loadMean = withLoad ? loadSum / parts : std::nan("");
  losses[0] = static_cast<float>(importance);
  losses[1] = static_cast<float>(loadMean);
  losses[2] = static_cast<float>(wImp * importance + (withLoad ? wLoad * loadMean : 0.0));
  return nullptr;
}

// ---- The router: product, mask, noise and softmax in one call each way ---------------------
// Forward: logits = x w (N, E), plus the E³ partition mask (−1e9 where expert e is outside
// member t mod M's block, as src/ensembles/partition.ts adds it); gates = softmax(logits +
// noise) (noise optional). Backward: dz = dLogits + softmax'(gates)ᵀ dGates, dx = dz wᵀ,
// dw = xᵀ dz. The product and softmax are the ones matMul and VmoeSoftmax run, so values
// equal the composed ops'. The clean gates softmax(logits) that the importance loss needs are
// recomputed inside routerAux instead of being a third output here: tfjs uploads a zero
// gradient for every output off the gradient's path.

// routerGates(heap, xOff, wOff, noiseOff (-1: none), logitsOff, gatesOff, N, H, E, M)
napi_value RouterGates(napi_env env, napi_callback_info info) {
  napi_value argv[10];
  float* heap;
  size_t length;
  int64_t v[9];
  if (!heapKernelArgs(env, info, 10, argv, "vmoe_blas.routerGates expects 10 arguments", &heap, &length, 9, v)) return nullptr;
  const int64_t x = v[0], w = v[1], noise = v[2], logits = v[3], gates = v[4];
  const int64_t N = v[5], H = v[6], E = v[7], M = v[8];
  if (N < 0 || H < 1 || E < 1 || M < 1 || E % M != 0 || N > INT32_MAX || H > INT32_MAX || E > INT32_MAX) {
    napi_throw_range_error(env, nullptr, "vmoe_blas.routerGates: bad dimensions");
    return nullptr;
  }
  if (!inRange(env, x, N * H, length, "vmoe_blas.routerGates: x outside the heap") ||
      !inRange(env, w, H * E, length, "vmoe_blas.routerGates: w outside the heap") ||
      !inRange(env, logits, N * E, length, "vmoe_blas.routerGates: logits outside the heap") ||
      !inRange(env, gates, N * E, length, "vmoe_blas.routerGates: gates outside the heap") ||
      (noise >= 0 && !inRange(env, noise, N * E, length, "vmoe_blas.routerGates: noise outside the heap"))) {
    return nullptr;
  }
  if (N == 0) return nullptr;
  float* lg = heap + logits;
  gemm(false, false, static_cast<int>(N), static_cast<int>(E), static_cast<int>(H), heap + x, heap + w, lg, nullptr, false);
  if (M > 1) {
    const int64_t Em = E / M;
    for (int64_t t = 0; t < N; t++) {
      const int64_t own = t % M;
      for (int64_t e = 0; e < E; e++) {
        if (e / Em != own) lg[t * E + e] += -1e9f;
      }
    }
  }
  if (noise >= 0) {
    static thread_local std::vector<float> noisy;
    noisy.resize(N * E);
    const float* ns = heap + noise;
    for (int64_t i = 0; i < N * E; i++) noisy[i] = lg[i] + ns[i];
    softmaxRows(noisy.data(), heap + gates, N, E);
  } else {
    softmaxRows(lg, heap + gates, N, E);
  }
  return nullptr;
}

// routerGatesGrad(heap, xOff, wOff, gatesOff, dGatesOff, dLogitsOff (-1: none), dxOff, dwOff, N, H, E)
napi_value RouterGatesGrad(napi_env env, napi_callback_info info) {
  napi_value argv[11];
  float* heap;
  size_t length;
  int64_t v[10];
  if (!heapKernelArgs(env, info, 11, argv, "vmoe_blas.routerGatesGrad expects 11 arguments", &heap, &length, 10, v)) return nullptr;
  const int64_t x = v[0], w = v[1], gates = v[2], dGates = v[3], dLogits = v[4], dx = v[5], dw = v[6];
  const int64_t N = v[7], H = v[8], E = v[9];
  if (N < 0 || H < 1 || E < 1 || N > INT32_MAX || H > INT32_MAX || E > INT32_MAX) {
    napi_throw_range_error(env, nullptr, "vmoe_blas.routerGatesGrad: bad dimensions");
    return nullptr;
  }
  if (!inRange(env, x, N * H, length, "vmoe_blas.routerGatesGrad: x outside the heap") ||
      !inRange(env, w, H * E, length, "vmoe_blas.routerGatesGrad: w outside the heap") ||
      !inRange(env, gates, N * E, length, "vmoe_blas.routerGatesGrad: gates outside the heap") ||
      !inRange(env, dGates, N * E, length, "vmoe_blas.routerGatesGrad: dGates outside the heap") ||
      (dLogits >= 0 && !inRange(env, dLogits, N * E, length, "vmoe_blas.routerGatesGrad: dLogits outside the heap")) ||
      !inRange(env, dx, N * H, length, "vmoe_blas.routerGatesGrad: dx outside the heap") ||
      !inRange(env, dw, H * E, length, "vmoe_blas.routerGatesGrad: dw outside the heap")) {
    return nullptr;
  }
  if (N == 0) {
    std::memset(heap + dw, 0, sizeof(float) * H * E);
    return nullptr;
  }
  static thread_local std::vector<float> dz;
  dz.resize(N * E);
  softmaxGradRows(heap + dGates, heap + gates, dz.data(), N, E);
  if (dLogits >= 0) {
    const float* d = heap + dLogits;
    for (int64_t i = 0; i < N * E; i++) dz[i] += d[i];
  }
  gemm(false, true, static_cast<int>(N), static_cast<int>(H), static_cast<int>(E), dz.data(), heap + w, heap + dx, nullptr, false);
  gemm(true, false, static_cast<int>(H), static_cast<int>(E), static_cast<int>(N), heap + x, dz.data(), heap + dw, nullptr, false);
  return nullptr;
}

// ---- Top-k dispatch planning on host arrays ---------------------------------------------------
// planTopK of src/vmoe/dispatch.ts (the reference, itself tested against the per-group rules of
// src/vmoe/routing.ts), plus the packed layout of packExpertRows, in one pass: each token's K
// experts by descending gate (ties to the lower index; NaN/-Infinity only when nothing else is
// left, then the lowest unchosen expert); per group, rank by rank over the tokens in position
// order (or by descending top-1 gate, stable: Batch Prioritized Routing); slot >= capacity drops
// the assignment. Kept assignments are appended to their expert's packed rows in the order the
// unpacked layout holds them (groups, then slots), so packed == packExpertRows(unpacked).

template <typename T>
bool mutableArrayArg(napi_env env, napi_value v, napi_typedarray_type want, T** data, size_t* length, const char* what) {
  const T* d;
  if (!typedArrayArg(env, v, want, &d, length, what)) return false;
  *data = const_cast<T*>(d);
  return true;
}

// planTopK(gates F32 (N·E), N, E, K, sizes I32 (groups), caps I32 (groups), batchPriority,
//          expert I32 (N·K), slot I32 (N·K), kept U8 (N·K), rowToken I32 (E·R), rowGate I32 (E·R),
//          packedToken I32 (E·R), packedGate I32 (E·R), rows I32 (E)) → processed assignments
napi_value PlanTopK(napi_env env, napi_callback_info info) {
  napi_value argv[15];
  if (!checkArgc(env, info, 15, argv, "vmoe_blas.planTopK expects 15 arguments")) return nullptr;
  const float* gates;
  const int32_t *sizes, *caps;
  int32_t *expert, *slot, *rowToken, *rowGate, *packedToken, *packedGate, *rows;
  uint8_t* kept;
  size_t nGates, nSizes, nCaps, nExpert, nSlot, nKept, nRT, nRG, nPT, nPG, nRows;
  int64_t dims[3];
  bool bpr;
  const char* bad = "vmoe_blas.planTopK: wrong argument types (Float32Array gates, Int32Array/Uint8Array outputs)";
  if (!typedArrayArg(env, argv[0], napi_float32_array, &gates, &nGates, bad) || !int64Args(env, argv, 1, 3, dims) ||
      !int32ArrayArg(env, argv[4], &sizes, &nSizes, bad) || !int32ArrayArg(env, argv[5], &caps, &nCaps, bad) ||
      napi_get_value_bool(env, argv[6], &bpr) != napi_ok ||
      !mutableArrayArg(env, argv[7], napi_int32_array, &expert, &nExpert, bad) ||
      !mutableArrayArg(env, argv[8], napi_int32_array, &slot, &nSlot, bad) ||
      !mutableArrayArg(env, argv[9], napi_uint8_array, &kept, &nKept, bad) ||
      !mutableArrayArg(env, argv[10], napi_int32_array, &rowToken, &nRT, bad) ||
      !mutableArrayArg(env, argv[11], napi_int32_array, &rowGate, &nRG, bad) ||
      !mutableArrayArg(env, argv[12], napi_int32_array, &packedToken, &nPT, bad) ||
      !mutableArrayArg(env, argv[13], napi_int32_array, &packedGate, &nPG, bad) ||
      !mutableArrayArg(env, argv[14], napi_int32_array, &rows, &nRows, bad)) {
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (!pending) napi_throw_type_error(env, nullptr, bad);
    return nullptr;
  }
  const int64_t N = dims[0], E = dims[1], K = dims[2];
  int64_t total = 0, R = 0;
  bool ok = N >= 0 && E >= 1 && K >= 1 && K <= E && N <= INT32_MAX / (E > K ? E : K) && nSizes == nCaps;
  for (size_t g = 0; ok && g < nSizes; g++) {
    ok = sizes[g] >= 1 && caps[g] >= 0;
    total += sizes[g];
    R += caps[g];
  }
  ok = ok && total == N && E * R <= INT32_MAX && nGates == static_cast<size_t>(N * E) && nExpert == static_cast<size_t>(N * K) &&
       nSlot == nExpert && nKept == nExpert && nRT == static_cast<size_t>(E * R) && nRG == nRT && nPT == nRT && nPG == nRT &&
       nRows == static_cast<size_t>(E);
  if (!ok) {
    napi_throw_range_error(env, nullptr, "vmoe_blas.planTopK: dimensions, group sizes (must add up to N), capacities or array lengths do not fit");
    return nullptr;
  }
  std::vector<float> top1(N);
  std::vector<int64_t> stamp(E, -1);
  std::vector<uint64_t> keys;
  for (int64_t t = 0; t < N; t++) {
    const float* g = gates + t * E;
    for (int64_t c = 0; c < K; c++) {
      int64_t best = -1;
      float bestV = -INFINITY;
      for (int64_t e = 0; e < E; e++) {
        if (g[e] > bestV && stamp[e] != t) {
          bestV = g[e];
          best = e;
        }
      }
      for (int64_t e = 0; best < 0 && e < E; e++) {
        if (stamp[e] != t) best = e;  // every remaining gate is -Infinity or NaN
      }
      stamp[best] = t;
      expert[t * K + c] = static_cast<int32_t>(best);
      if (c == 0) top1[t] = bestV;
    }
  }
  std::memset(rowToken, 0, sizeof(int32_t) * nRT);
  std::memset(rowGate, 0, sizeof(int32_t) * nRT);
  std::memset(packedToken, 0, sizeof(int32_t) * nRT);
  std::memset(packedGate, 0, sizeof(int32_t) * nRT);
  std::memset(kept, 0, nKept);
  std::memset(rows, 0, sizeof(int32_t) * E);
  std::vector<int64_t> counts(E), order;
  int64_t processed = 0, start = 0, offset = 0;
  for (size_t gi = 0; gi < nSizes; gi++) {
    const int64_t S = sizes[gi], C = caps[gi];
    order.resize(S);
    if (bpr) {
      // Descending top-1 gate, ties in position order, as one sort of 64-bit keys: the gate's bits
      // mapped to an order-preserving unsigned integer (±0 as one value), inverted, above the position.
      keys.resize(S);
      for (int64_t i = 0; i < S; i++) {
        const float v = top1[start + i] == 0.0f ? 0.0f : top1[start + i];
        const uint32_t bits = static_cast<uint32_t>(bitsOf(v));
        const uint32_t ascending = (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
        keys[i] = (static_cast<uint64_t>(~ascending) << 32) | static_cast<uint64_t>(i);
      }
      std::sort(keys.begin(), keys.end());
      for (int64_t i = 0; i < S; i++) order[i] = start + static_cast<int64_t>(keys[i] & 0xffffffffu);
    } else {
      for (int64_t i = 0; i < S; i++) order[i] = start + i;
    }
    std::fill(counts.begin(), counts.end(), 0);
    for (int64_t c = 0; c < K; c++) {
      for (int64_t i = 0; i < S; i++) {
        const int64_t t = order[i], a = t * K + c, e = expert[a];
        const int64_t s = counts[e]++;
        slot[a] = static_cast<int32_t>(s);
        if (s < C) {
          kept[a] = 1;
          processed++;
          const int32_t token = static_cast<int32_t>(t + 1), gate = static_cast<int32_t>(t * E + e + 1);
          rowToken[e * R + offset + s] = token;
          rowGate[e * R + offset + s] = gate;
          const int64_t p = e * R + rows[e]++;
          packedToken[p] = token;
          packedGate[p] = gate;
        }
      }
    }
    start += S;
    offset += C;
  }
  napi_value result;
  NAPI_OK(napi_create_double(env, static_cast<double>(processed), &result));
  return result;
}

// ---- Router noise: the ziggurat of src/util/rng.ts (Rng.normals) ---------------------------------
// Same generator (xoshiro128**), same tables (passed in from JavaScript, so both read identical
// doubles) and the same operations in the same order, so the values are the JavaScript ones bit
// for bit: the fast path is integer work and two double products; the rare wedge and tail cases
// call exp/log, where glibc and V8 could in principle round differently in the last bit (tests
// compare millions of draws exactly). Built for the baseline ISA (no target_clones): no FMA can
// contract a product and a sum that JavaScript rounds separately.

struct Xoshiro128 {
  uint32_t s[4];
  static uint32_t rotl(uint32_t x, int k) { return (x << k) | (x >> (32 - k)); }
  uint32_t next() {
    const uint32_t result = rotl(s[1] * 5u, 7) * 9u;
    const uint32_t t = s[1] << 9;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return result;
  }
  double uniform() { return next() / 4294967296.0; }
};

// zigguratSlow of src/util/rng.ts: the draw j missed its layer's box.
double zigguratSlow(Xoshiro128& rng, int32_t j, const double* k, const double* w, const double* f, double R) {
  for (;;) {
    const int32_t layer = j & 127;
    const double x = static_cast<double>(j) * w[layer];
    if (std::fabs(static_cast<double>(j)) < k[layer]) return x;
    if (layer == 0) {
      double tx, ty;
      do {
        tx = -std::log(1 - rng.uniform()) / R;
        ty = -std::log(1 - rng.uniform());
      } while (ty + ty < tx * tx);
      return j > 0 ? R + tx : -R - tx;
    }
    if (f[layer] + rng.uniform() * (f[layer - 1] - f[layer]) < std::exp(-0.5 * x * x)) return x;
    j = static_cast<int32_t>(rng.next());
  }
}

// normals(state Uint32Array(4) (read and advanced), k, w, f Float64Array(128), R, scale, out Float32Array)
napi_value Normals(napi_env env, napi_callback_info info) {
  napi_value argv[7];
  if (!checkArgc(env, info, 7, argv, "vmoe_blas.normals expects 7 arguments")) return nullptr;
  const uint32_t* state;
  const double *k, *w, *f;
  float* out;
  size_t nState, nk, nw, nf, n;
  double R, scale;
  const char* bad = "vmoe_blas.normals: expects (Uint32Array(4), 3 × Float64Array(128), R, scale, Float32Array)";
  if (!typedArrayArg(env, argv[0], napi_uint32_array, &state, &nState, bad) || !float64ArrayArg(env, argv[1], &k, &nk, bad) ||
      !float64ArrayArg(env, argv[2], &w, &nw, bad) || !float64ArrayArg(env, argv[3], &f, &nf, bad) ||
      !mutableArrayArg(env, argv[6], napi_float32_array, &out, &n, bad)) {
    return nullptr;
  }
  if (napi_get_value_double(env, argv[4], &R) != napi_ok || napi_get_value_double(env, argv[5], &scale) != napi_ok) {
    napi_throw_type_error(env, nullptr, bad);
    return nullptr;
  }
  if (nState != 4 || nk != 128 || nw != 128 || nf != 128) {
    napi_throw_range_error(env, nullptr, bad);
    return nullptr;
  }
  Xoshiro128 rng{{state[0], state[1], state[2], state[3]}};
  for (size_t i = 0; i < n; i++) {
    const int32_t j = static_cast<int32_t>(rng.next());
    const int32_t layer = j & 127;
    const double v = std::fabs(static_cast<double>(j)) < k[layer] ? static_cast<double>(j) * w[layer] : zigguratSlow(rng, j, k, w, f, R);
    out[i] = static_cast<float>(scale * v);
  }
  uint32_t* st = const_cast<uint32_t*>(state);
  for (int i = 0; i < 4; i++) st[i] = rng.s[i];
  return nullptr;
}

napi_value SetThreads(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  int64_t n = 1;
  if (argc < 1 || !int64Arg(env, argv[0], &n)) return nullptr;
  if (n < 1) n = 1;
  openblas_set_num_threads(static_cast<int>(n));
#ifdef VMOE_HAVE_DNNL
  omp_set_num_threads(static_cast<int>(n));
#endif
  return nullptr;
}

// setGemm(name): "onednn" or "openblas"; throws for a library this build lacks.
napi_value SetGemm(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  char name[32] = {0};
  size_t len = 0;
  if (argc < 1 || napi_get_value_string_utf8(env, argv[0], name, sizeof(name), &len) != napi_ok) {
    napi_throw_type_error(env, nullptr, "vmoe_blas.setGemm expects a library name");
    return nullptr;
  }
  const std::string want(name, len);
  if (want == "openblas") {
    useDnnl = false;
#ifdef VMOE_HAVE_DNNL
  } else if (want == "onednn") {
    useDnnl = true;
#endif
  } else {
    napi_throw_error(env, nullptr, ("vmoe_blas.setGemm: this build has no GEMM library \"" + want + "\"").c_str());
  }
  return nullptr;
}

napi_value Info(napi_env env, napi_callback_info) {
  napi_value obj, core, config, threads;
  NAPI_OK(napi_create_object(env, &obj));
  NAPI_OK(napi_create_string_utf8(env, openblas_get_corename(), NAPI_AUTO_LENGTH, &core));
  NAPI_OK(napi_create_string_utf8(env, openblas_get_config(), NAPI_AUTO_LENGTH, &config));
  NAPI_OK(napi_create_int32(env, openblas_get_num_threads(), &threads));
  NAPI_OK(napi_set_named_property(env, obj, "coreName", core));
  NAPI_OK(napi_set_named_property(env, obj, "config", config));
  NAPI_OK(napi_set_named_property(env, obj, "threads", threads));
  napi_value gemm, libs, lib, version;
  NAPI_OK(napi_create_string_utf8(env, useDnnl ? "onednn" : "openblas", NAPI_AUTO_LENGTH, &gemm));
  NAPI_OK(napi_set_named_property(env, obj, "gemm", gemm));
  NAPI_OK(napi_create_array(env, &libs));
  uint32_t nLibs = 0;
#ifdef VMOE_HAVE_DNNL
  NAPI_OK(napi_create_string_utf8(env, "onednn", NAPI_AUTO_LENGTH, &lib));
  NAPI_OK(napi_set_element(env, libs, nLibs++, lib));
  const dnnl_version_t* v = dnnl_version();
  const std::string dnnlVersion = std::to_string(v->major) + "." + std::to_string(v->minor) + "." + std::to_string(v->patch);
  NAPI_OK(napi_create_string_utf8(env, dnnlVersion.c_str(), NAPI_AUTO_LENGTH, &version));
#else
  NAPI_OK(napi_get_null(env, &version));
#endif
  NAPI_OK(napi_create_string_utf8(env, "openblas", NAPI_AUTO_LENGTH, &lib));
  NAPI_OK(napi_set_element(env, libs, nLibs++, lib));
  NAPI_OK(napi_set_named_property(env, obj, "gemmLibraries", libs));
  NAPI_OK(napi_set_named_property(env, obj, "onednnVersion", version));
  return obj;
}

napi_value Init(napi_env env, napi_value exports) {
  const napi_property_descriptor props[] = {
      {"sgemm", nullptr, Sgemm, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"sgemmOffsets", nullptr, SgemmOffsets, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"copyStrided", nullptr, CopyStrided, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"tanh", nullptr, Tanh, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"gelu", nullptr, Gelu, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"geluGrad", nullptr, GeluGrad, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"layerNorm", nullptr, LayerNorm, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"layerNormGrad", nullptr, LayerNormGrad, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"softmax", nullptr, Softmax, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"softmaxGrad", nullptr, SoftmaxGrad, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"attention", nullptr, Attention, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"attentionGrad", nullptr, AttentionGrad, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"reduceMiddle", nullptr, ReduceMiddle, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"adam", nullptr, Adam, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"sumOfSquares", nullptr, SumOfSquares, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"combineRows", nullptr, CombineRows, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"combineRowsGrad", nullptr, CombineRowsGrad, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"setThreads", nullptr, SetThreads, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"expertDense", nullptr, ExpertDense, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"expertDenseGrad", nullptr, ExpertDenseGrad, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"routerAux", nullptr, RouterAux, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"normals", nullptr, Normals, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"planTopK", nullptr, PlanTopK, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"routerGates", nullptr, RouterGates, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"routerGatesGrad", nullptr, RouterGatesGrad, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"setGemm", nullptr, SetGemm, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"info", nullptr, Info, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  NAPI_OK(napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props));
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
