// The MoE router: routerGates / routerGatesGrad (product, E³ mask, noise and softmax in one call
// each way), routerAux (importance and load auxiliary losses with their gradient) and planTopK
// (top-k dispatch planning with capacities and Batch Prioritized Routing, on host arrays).

#include "common.h"

namespace vmoe {

namespace {

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

}  // namespace

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

}  // namespace vmoe
