// The one header every unit of the vmoe_blas addon includes: the common includes (Node-API,
// OpenBLAS, oneDNN when built with it), the helpers that check entry-point arguments, the SIMD
// helpers the kernels share (bit casts, expSmall, lane and tree reductions), the GEMM call every
// product goes through, and the declarations the units share: the kernels one unit calls in
// another and every entry point, which module.cc registers.
//
// Every entry point takes `heap`, a Float32Array over the whole wasm memory, and float-element
// offsets into it; the caller (src/engine/native/) has already allocated the output, so the
// heap cannot move during a call. Plain Node-API (node_api.h, ABI-stable across Node versions),
// so the build needs no npm package beyond node-gyp itself.
//
// The helpers below sit in an anonymous namespace, so each unit compiles its own copy, inlined
// into its kernels (and their target_clones variants) exactly as when the addon was one file.
#pragma once

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
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#define NAPI_OK(call)                                                   \
  do {                                                                  \
    if ((call) != napi_ok) {                                            \
      napi_throw_error(env, nullptr, "vmoe_blas: N-API call failed: " #call); \
      return nullptr;                                                   \
    }                                                                   \
  } while (0)

namespace vmoe {

// ---- Shared between units ---------------------------------------------------------------

// The GEMM library every product goes through (gemm.cc): oneDNN when compiled in, else OpenBLAS.
extern bool useDnnl;

// One row-major product C = op(A) op(B) (+ bias rows), then optional ReLU (gemm.cc).
void gemm(bool ta, bool tb, int M, int N, int K, const float* a, const float* b, float* c, const float* bias, bool relu);
struct PackedWeights;
// C (M, N) = A (M, K) · B (+ bias rows) with B also given packed for oneDNN's matmul (packed.cc): the packed product
// where it runs (packed not null, oneDNN active), else gemm() on the row-major b (gemm.cc).
void gemmPrepacked(int M, int N, int K, const float* a, const float* b, const PackedWeights* packed, float* c,
                   const float* bias);

// Row softmax and its gradient over the last axis of row-major (rows, cols) (elementwise.cc;
// target_clones, so callers in every unit run the same ISA variant).
void softmaxRows(const float* __restrict xs, float* __restrict ys, int64_t rows, int64_t cols);
void softmaxGradRows(const float* __restrict dys, const float* __restrict ys, float* __restrict dxs, int64_t rows, int64_t cols);

// The tanh-form GELU y = gelu(x) over n values and LayerNorm over the last axis of row-major (rows, cols), the
// loops behind the gelu and layerNorm entry points (elementwise.cc); x and y must not overlap.
void geluForward(const float* x, float* y, int64_t n);
// y = gelu(x + bias) over row-major (rows, cols), bias (cols).
void geluBiasForward(const float* x, const float* bias, float* y, int64_t rows, int64_t cols);
void layerNormForward(const float* xs, const float* scale, const float* bias, float* ys, int64_t rows, int64_t cols,
                      float eps);

// One image's multi-head self-attention on its fused projection (attention.cc): qkv (T, 3H) row-major, columns
// [q | k | v] each head-major, H = heads·hd; out (T, H) with row stride ldOut; probs (heads, T, T) or null.
// scratch holds attendScratchFloats(T, hd) floats.
int64_t attendScratchFloats(int T, int hd);
void attendImage(const float* qkv, float* out, int64_t ldOut, float* probs, int T, int heads, int hd, float scale,
                 float* scratch);

// out[j] = scale · Σ_i x[i, j] over a row-major (rows, cols) block, in double (strided.cc).
void columnSums(const float* x, int64_t rows, int64_t cols, double scale, float* out);

// The entry points, by unit (module.cc registers them).
#define VMOE_ENTRY(name) napi_value name(napi_env env, napi_callback_info info)
VMOE_ENTRY(Sgemm); VMOE_ENTRY(SgemmOffsets); VMOE_ENTRY(SetThreads); VMOE_ENTRY(SetGemm); VMOE_ENTRY(Info);  // gemm.cc
VMOE_ENTRY(CopyStrided); VMOE_ENTRY(ReduceMiddle);                                                    // strided.cc
VMOE_ENTRY(Tanh); VMOE_ENTRY(AddTiled); VMOE_ENTRY(Gelu); VMOE_ENTRY(GeluGrad); VMOE_ENTRY(LayerNorm); VMOE_ENTRY(LayerNormGrad);
VMOE_ENTRY(Softmax); VMOE_ENTRY(SoftmaxGrad);                                                         // elementwise.cc
VMOE_ENTRY(Attention); VMOE_ENTRY(AttentionGrad);                                                     // attention.cc
VMOE_ENTRY(EncoderBlock); VMOE_ENTRY(PatchEmbed);                                                     // block.cc
VMOE_ENTRY(Adam); VMOE_ENTRY(SumOfSquares);                                                           // optimizer.cc
VMOE_ENTRY(CombineRows); VMOE_ENTRY(CombineRowsGrad); VMOE_ENTRY(ExpertDense); VMOE_ENTRY(ExpertDenseGrad);  // experts.cc
VMOE_ENTRY(ExpertMlp);                                                                                // experts.cc
VMOE_ENTRY(PackWeights);                                                                              // packed.cc

// A (K, N) weight in the layout oneDNN's matmul picked (packed.cc): its memory descriptor's bytes and the data,
// 64-byte aligned, owned here (freed with the JavaScript external that holds it).
struct PackedWeights {
  int64_t K = 0, N = 0;
  std::vector<unsigned char> desc;
  float* data = nullptr;
  void allocate(size_t bytes) {
    std::free(data);
    data = static_cast<float*>(std::aligned_alloc(64, (bytes + 63) / 64 * 64));
  }
  ~PackedWeights() { std::free(data); }
};
// C (M, N) = A (M, K) · B with B packed (no bias); false where it cannot run, and the caller uses the row-major B.
bool gemmPacked(int M, const float* a, const PackedWeights* packed, float* c);
// Reads an optional packWeights external for a (K, N) product: null / undefined → *out = nullptr.
bool packedArg(napi_env env, napi_value value, const PackedWeights** out, int64_t K, int64_t N);
bool packedListArg(napi_env env, napi_value value, int64_t count, int64_t K, int64_t N,
                   std::vector<const PackedWeights*>& out);
VMOE_ENTRY(RouterGates); VMOE_ENTRY(RouterGatesGrad); VMOE_ENTRY(RouterAux); VMOE_ENTRY(PlanTopK);     // router.cc
VMOE_ENTRY(Normals);                                                                                  // rng.cc
#undef VMOE_ENTRY

namespace {

// ---- Argument checking --------------------------------------------------------------------

inline bool heapArg(napi_env env, napi_value v, float** data, size_t* length) {
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

inline bool int64Arg(napi_env env, napi_value v, int64_t* out) {
  if (napi_get_value_int64(env, v, out) != napi_ok) {
    napi_throw_type_error(env, nullptr, "vmoe_blas: expected a number");
    return false;
  }
  return true;
}

inline bool inRange(napi_env env, int64_t off, int64_t count, size_t length, const char* what) {
  if (off < 0 || count < 0 || static_cast<uint64_t>(off + count) > length) {
    napi_throw_range_error(env, nullptr, what);
    return false;
  }
  return true;
}

// A typed-array argument of element type `want`: its data and length.
template <typename T>
inline bool typedArrayArg(napi_env env, napi_value v, napi_typedarray_type want, const T** data, size_t* length, const char* what) {
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

inline bool int32ArrayArg(napi_env env, napi_value v, const int32_t** data, size_t* length, const char* what) {
  return typedArrayArg(env, v, napi_int32_array, data, length, what);
}

inline bool float64ArrayArg(napi_env env, napi_value v, const double** data, size_t* length, const char* what) {
  return typedArrayArg(env, v, napi_float64_array, data, length, what);
}

template <typename T>
inline bool mutableArrayArg(napi_env env, napi_value v, napi_typedarray_type want, T** data, size_t* length, const char* what) {
  const T* d;
  if (!typedArrayArg(env, v, want, &d, length, what)) return false;
  *data = const_cast<T*>(d);
  return true;
}

inline bool checkArgc(napi_env env, napi_callback_info info, size_t want, napi_value* argv, const char* message) {
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
inline bool int64Args(napi_env env, const napi_value* argv, int first, int count, int64_t* out) {
  for (int i = 0; i < count; i++) {
    if (!int64Arg(env, argv[first + i], &out[i])) return false;
  }
  return true;
}

// The prologue every heap kernel shares: exactly `want` arguments, argv[0] the
// wasm heap (a Float32Array), argv[1 .. 1+nInts) integers (offsets and sizes).
inline bool heapKernelArgs(napi_env env, napi_callback_info info, size_t want, napi_value* argv, const char* message,
                           float** heap, size_t* length, int nInts, int64_t* v) {
  return checkArgc(env, info, want, argv, message) && heapArg(env, argv[0], heap, length) &&
         int64Args(env, argv, 1, nInts, v);
}

// A view of int32 indices stored in the heap at float offset off.
inline const int32_t* intsAt(float* heap, int64_t off) { return reinterpret_cast<const int32_t*>(heap + off); }

// ---- GEMM ---------------------------------------------------------------------------------

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

// f(lo, hi) over [0, n) cut into one chunk per OpenMP thread (64-value aligned) when n is large enough to pay for
// the threads' start (~64 K values), else f(0, n). Elementwise results do not depend on the cut.
template <typename F>
inline void forChunks(int64_t n, const F& f) {
#ifdef _OPENMP
  const int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
  if (threads > 1 && n >= 65536) {
    const int64_t chunk = ((n + threads - 1) / threads + 63) / 64 * 64;
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int64_t lo = 0; lo < n; lo += chunk) f(lo, std::min(n, lo + chunk));
    return;
  }
#endif
  f(0, n);
}

// ---- SIMD helpers -------------------------------------------------------------------------

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
// held in the low mantissa bits. Branch-free, so the kernels' loops vectorise (built with
// -fno-trapping-math so the selects need no branch).
// The steps before the exponent bits, for a float or a GCC vector of floats (attention.cc's 16-lane form):
// returns 2^f's series and sets *shifted, whose low mantissa bits hold n.
constexpr float kExpMagic = 12582912.0f;
template <typename F>
__attribute__((always_inline)) inline F expSeries(F x, F* shifted) {
  const F t = x * 1.44269504088896341f;
  *shifted = t + kExpMagic;
  const F n = *shifted - kExpMagic;
  const F u = (t - n) * 0.693147180559945309f;
  return 1.0f + u * (1.0f + u * (0.5f + u * (1.0f / 6 + u * (1.0f / 24 + u * (1.0f / 120 + u * (1.0f / 720 + u * (1.0f / 5040)))))));
}
inline float expSmall(float x) {
  float shifted;
  const float p = expSeries(x, &shifted);
  return p * fromBits((bitsOf(shifted) - bitsOf(kExpMagic) + 127) << 23);
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

}  // namespace
}  // namespace vmoe
