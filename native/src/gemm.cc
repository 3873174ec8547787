// GEMM and the GEMM libraries: every matrix product of the addon goes through sgemmRowMajor
// (common.h) and so through oneDNN when it is compiled in (the default) or OpenBLAS.
// Holds the run-time library switch (useDnnl), gemm() (one product + bias rows + ReLU, shared
// with the expert and router kernels), the sgemm / sgemmOffsets entry points behind tfjs's
// BatchMatMul and _FusedMatMul, and the library controls setThreads, setGemm and info.

#include "common.h"

namespace vmoe {

// The GEMM library every product goes through: oneDNN when compiled in (the default), else
// OpenBLAS; setGemm switches at run time so the two can be compared and tested.
bool useDnnl =
#ifdef VMOE_HAVE_DNNL
    true;
#else
    false;
#endif

namespace {

// Adds the bias row to rows [r0, r1) × columns [c0, c1) of C, then ReLU: the product's epilogue, run by the thread
// that just wrote that block, while it is still in its cache.
void epilogue(float* c, int ldc, int r0, int r1, int c0, int c1, const float* bias, bool relu) {
  if (bias == nullptr && !relu) return;
  for (int i = r0; i < r1; i++) {
    float* row = c + static_cast<int64_t>(i) * ldc;
    if (bias != nullptr) {
      for (int j = c0; j < c1; j++) row[j] += bias[j];
    }
    if (relu) {
      for (int j = c0; j < c1; j++) row[j] = row[j] > 0.0f ? row[j] : 0.0f;
    }
  }
}

// sgemmRowMajor (beta 0) with C cut into one block of rows per OpenMP thread (of columns when there are too few
// rows), each block one single-threaded oneDNN call (inside the parallel region oneDNN runs single-threaded)
// followed by the bias and ReLU epilogue on that block. oneDNN's own threading ran our skinny products (K or N of
// 64–512) at 0.4–0.6 of two cores' peak (ViT-S/32 shapes, 3200 rows: q|k|v 86 GFLOP/s, fc1 65 against 187 for the
// same products cut by rows in the inference block); cut this way K is never split, so each element is the
// single-threaded call's. Below ~1 M multiply-adds one call does it all. The bias used to be copied into C's rows
// first (beta 1): a pass over C on one thread before the product, which cost a training forward's products a third
// of their time at hidden 64 (3200 × 64 × 192: 1.7–2.1 ms with the copy, 1.0 ms without).
void sgemmThreaded(bool ta, bool tb, int M, int N, int K, const float* a, int lda, const float* b, int ldb, float* c,
                   int ldc, const float* bias, bool relu) {
#ifdef _OPENMP
  const int threads = useDnnl && !omp_in_parallel() ? omp_get_max_threads() : 1;
  if (threads > 1 && static_cast<int64_t>(M) * N * K >= (int64_t{1} << 20)) {
    const bool byRows = M >= 32 * threads || M >= N;
    const int extent = byRows ? M : N;
    const int chunk = ((extent + threads - 1) / threads + 15) / 16 * 16;
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int lo = 0; lo < extent; lo += chunk) {
      const int n = std::min(chunk, extent - lo);
      if (byRows) {
        sgemmRowMajor(ta, tb, n, N, K, 1.0f, ta ? a + lo : a + static_cast<int64_t>(lo) * lda, lda, b, ldb, 0.0f,
                      c + static_cast<int64_t>(lo) * ldc, ldc);
        epilogue(c, ldc, lo, lo + n, 0, N, bias, relu);
      } else {
        sgemmRowMajor(ta, tb, M, n, K, 1.0f, a, lda, tb ? b + static_cast<int64_t>(lo) * ldb : b + lo, ldb, 0.0f,
                      c + lo, ldc);
        epilogue(c, ldc, 0, M, lo, lo + n, bias, relu);
      }
    }
    return;
  }
#endif
  sgemmRowMajor(ta, tb, M, N, K, 1.0f, a, lda, b, ldb, 0.0f, c, ldc);
  epilogue(c, ldc, 0, M, 0, N, bias, relu);
}

}  // namespace

// One row-major product C = op(A) op(B) (+ bias rows), then optional ReLU.
void gemm(bool ta, bool tb, int M, int N, int K, const float* a, const float* b, float* c,
          const float* bias, bool relu) {
  if (K == 0) {
    // No product: C is the bias rows (or zeros), then ReLU.
    for (int i = 0; i < M; i++) {
      float* row = c + static_cast<size_t>(i) * N;
      if (bias != nullptr) std::memcpy(row, bias, sizeof(float) * N);
      else std::memset(row, 0, sizeof(float) * N);
    }
    epilogue(c, N, 0, M, 0, N, nullptr, relu);
    return;
  }
  sgemmThreaded(ta, tb, M, N, K, a, ta ? M : K, b, tb ? K : N, c, N, bias, relu);
}

void gemmPrepacked(int M, int N, int K, const float* a, const float* b, const PackedWeights* packed, float* c,
                   const float* bias) {
  if (packed != nullptr && gemmPacked(M, a, packed, c)) {
    epilogue(c, N, 0, M, 0, N, bias, false);
    return;
  }
  gemm(false, false, M, N, K, a, b, c, bias, false);
}

// sgemm(heap, transA, transB, M, N, K, batch, aOff, aStride, bOff, bStride, cOff, cStride, biasOff, biasStride, relu)
// A batch stride of 0 broadcasts that operand (or the bias row) over the batch; biasOff < 0 means no bias.
napi_value Sgemm(napi_env env, napi_callback_info info) {
  napi_value argv[16];
  if (!checkArgc(env, info, 16, argv, "vmoe_blas.sgemm expects 16 arguments")) return nullptr;
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
  napi_value argv[7];
  if (!checkArgc(env, info, 7, argv, "vmoe_blas.sgemmOffsets expects 7 arguments")) return nullptr;
  float* heap;
  size_t length;
  if (!heapArg(env, argv[0], &heap, &length)) return nullptr;
  bool ta, tb;
  NAPI_OK(napi_get_value_bool(env, argv[1], &ta));
  NAPI_OK(napi_get_value_bool(env, argv[2], &tb));
  int64_t M, N, K;
  if (!int64Arg(env, argv[3], &M) || !int64Arg(env, argv[4], &N) || !int64Arg(env, argv[5], &K)) return nullptr;
  const int32_t* off;
  size_t count;
  const char* badOffsets = "vmoe_blas.sgemmOffsets: offsets must be an Int32Array of triples";
  if (!int32ArrayArg(env, argv[6], &off, &count, badOffsets)) return nullptr;
  if (count % 3 != 0) {
    napi_throw_type_error(env, nullptr, badOffsets);
    return nullptr;
  }
  if (M < 0 || N < 0 || K < 0 || M > INT32_MAX || N > INT32_MAX || K > INT32_MAX) {
    napi_throw_range_error(env, nullptr, "vmoe_blas.sgemmOffsets: bad dimensions");
    return nullptr;
  }
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

}  // namespace vmoe
