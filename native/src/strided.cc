// Strided copies and block reductions on the wasm heap: copyStrided (tfjs's Slice, SplitV and
// Unpack as one copy per piece) and reduceMiddle (float32 Sum / Mean over a contiguous block of
// axes, without the transpose the wasm kernels make), with columnSums, which the expert
// products' bias gradient shares.

#include "common.h"

namespace vmoe {

// copyStrided(heap, srcOff, dstOff, shape: Int32Array, srcStrides: Int32Array)
// dst (contiguous, row-major `shape`) = the strided view of src: a slice of any rank.
napi_value CopyStrided(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  if (!checkArgc(env, info, 5, argv, "vmoe_blas.copyStrided expects 5 arguments")) return nullptr;
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

}  // namespace vmoe
