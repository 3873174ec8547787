// Native matrix products for the wasm backend: OpenBLAS sgemm on zero-copy
// views of the wasm heap. Plain Node-API (node_api.h, ABI-stable across Node
// versions) so the build needs no npm package beyond node-gyp itself.
//
// Every entry point takes `heap`, a Float32Array over the whole wasm memory,
// and float-element offsets into it; the caller (src/engine/native-blas.ts)
// has already allocated the output, so the heap cannot move during a call.
#include <node_api.h>
#include <cblas.h>

#include <cmath>
#include <cstdint>
#include <cstring>

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
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K, 1.0f,
                a, ta ? M : K, b, tb ? K : N, beta, c, N);
  }
  if (relu) {
    const size_t n = static_cast<size_t>(M) * N;
    for (size_t i = 0; i < n; i++) c[i] = c[i] > 0.0f ? c[i] : 0.0f;
  }
}

// sgemm(heap, transA, transB, M, N, K, batch, aOff, aStride, bOff, bStride, cOff, cStride, biasOff, relu)
// A batch stride of 0 broadcasts that operand over the batch; biasOff < 0 means no bias.
napi_value Sgemm(napi_env env, napi_callback_info info) {
  size_t argc = 15;
  napi_value argv[15];
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  if (argc != 15) {
    napi_throw_type_error(env, nullptr, "vmoe_blas.sgemm expects 15 arguments");
    return nullptr;
  }
  float* heap;
  size_t length;
  if (!heapArg(env, argv[0], &heap, &length)) return nullptr;
  bool ta, tb, relu;
  NAPI_OK(napi_get_value_bool(env, argv[1], &ta));
  NAPI_OK(napi_get_value_bool(env, argv[2], &tb));
  int64_t v[11];
  for (int i = 0; i < 11; i++) {
    if (!int64Arg(env, argv[3 + i], &v[i])) return nullptr;
  }
  NAPI_OK(napi_get_value_bool(env, argv[14], &relu));
  const int64_t M = v[0], N = v[1], K = v[2], batch = v[3];
  const int64_t aOff = v[4], aStride = v[5], bOff = v[6], bStride = v[7], cOff = v[8], cStride = v[9], biasOff = v[10];
  if (M < 0 || N < 0 || K < 0 || batch < 0 || M > INT32_MAX || N > INT32_MAX || K > INT32_MAX) {
    napi_throw_range_error(env, nullptr, "vmoe_blas.sgemm: bad dimensions");
    return nullptr;
  }
  if (batch > 0) {
    const int64_t last = batch - 1;
    if (!inRange(env, aOff, last * aStride + M * K, length, "vmoe_blas.sgemm: A outside the heap") ||
        !inRange(env, bOff, last * bStride + K * N, length, "vmoe_blas.sgemm: B outside the heap") ||
        !inRange(env, cOff, last * cStride + M * N, length, "vmoe_blas.sgemm: C outside the heap") ||
        (biasOff >= 0 && !inRange(env, biasOff, N, length, "vmoe_blas.sgemm: bias outside the heap"))) {
      return nullptr;
    }
  }
  const float* bias = biasOff >= 0 ? heap + biasOff : nullptr;
  for (int64_t i = 0; i < batch; i++) {
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

bool int32ArrayArg(napi_env env, napi_value v, const int32_t** data, size_t* length, const char* what) {
  napi_typedarray_type type;
  void* raw;
  napi_value buffer;
  size_t byteOffset;
  if (napi_get_typedarray_info(env, v, &type, length, &raw, &buffer, &byteOffset) != napi_ok || type != napi_int32_array) {
    napi_throw_type_error(env, nullptr, what);
    return false;
  }
  *data = static_cast<const int32_t*>(raw);
  return true;
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

// e^x for x in [0, 18] (all tanh needs): 2^(n+f) with n the nearest integer, |f| <= 1/2;
// 2^f from its Taylor series to degree 7 (truncation < 1e-8); 2^n built as exponent bits.
// Adding 1.5·2^23 rounds to an integer held in the low mantissa bits. Branch-free, so the
// loop below vectorises (built with -fno-trapping-math so the select needs no branch).
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
__attribute__((target_clones("avx512f", "avx2", "default")))
void tanhLoop(const float* __restrict x, float* __restrict y, int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    const float v = x[i];
    const float abs = fromBits(bitsOf(v) & 0x7fffffff);
    const float a = abs > 9.0f ? 9.0f : abs;  // NaN stays NaN
    const float s = a * a;
    const float series = a * (1.0f + s * (-1.0f / 3 + s * (2.0f / 15 + s * (-17.0f / 315 + s * (62.0f / 2835)))));
    const float viaExp = 1.0f - 2.0f / (expSmall(2.0f * a) + 1.0f);
    const float r = a < 0.25f ? series : viaExp;
    y[i] = fromBits(bitsOf(r) | (bitsOf(v) & static_cast<int32_t>(0x80000000u)));
  }
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

napi_value SetThreads(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  int64_t n = 1;
  if (argc < 1 || !int64Arg(env, argv[0], &n)) return nullptr;
  if (n < 1) n = 1;
  openblas_set_num_threads(static_cast<int>(n));
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
  return obj;
}

napi_value Init(napi_env env, napi_value exports) {
  const napi_property_descriptor props[] = {
      {"sgemm", nullptr, Sgemm, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"sgemmOffsets", nullptr, SgemmOffsets, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"copyStrided", nullptr, CopyStrided, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"tanh", nullptr, Tanh, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"setThreads", nullptr, SetThreads, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"info", nullptr, Info, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  NAPI_OK(napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props));
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
