// The MoE layer's expert side: combineRows / combineRowsGrad (the gate-weighted combine of
// expert outputs back into token rows) and expertDense / expertDenseGrad (per-expert products
// over packed buffers, with the dispatch gather done inside the product).
// Row indices are 1-based int32 (0: an empty expert-buffer slot), read from the same heap. They
// replace the padded concat, GatherNd, ScatterNd and the gate multiply of the composed form (and
// those ops' gradients) with one pass each.

#include "common.h"

#include <memory>

namespace vmoe {

namespace {

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

}  // namespace

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

namespace {

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

}  // namespace

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

namespace {

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

// f(e) for each expert e < E: on the OpenMP threads (dynamic: experts fill unevenly) where products are oneDNN's
// single-threaded calls, else one after another (OpenBLAS threads each product itself).
template <typename F>
void forExperts(int64_t E, const F& f) {
#ifdef _OPENMP
  if (useDnnl && E > 1 && !omp_in_parallel() && omp_get_max_threads() > 1) {
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t e = 0; e < E; e++) f(e);
    return;
  }
#endif
  for (int64_t e = 0; e < E; e++) f(e);
}

// Rows x[tokens[i] − 1] for i < r into out (r, I).
void gatherTokens(const float* x, const int32_t* tokens, int64_t r, int64_t I, float* out) {
  for (int64_t i = 0; i < r; i++) std::memcpy(out + i * I, x + (tokens[i] - 1) * I, sizeof(float) * I);
}

}  // namespace

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
  // One expert per loop turn, the experts spread over the OpenMP threads (each product then single-threaded, so a
  // value does not depend on the thread count); with OpenBLAS one after another, each product on its threads.
  forExperts(E, [&](int64_t e) {
    static thread_local std::vector<float> xs;
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
  });
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
  // Experts over the OpenMP threads as in expertDense; with tokens, each expert's rows of dx go to its own slice of
  // dxs (E, R, I) and are added into dx afterwards in expert, then row order — per value the order of one thread.
  // Reused between calls, and not zeroed: each expert writes its first rows_e rows, and only those are read.
  static thread_local std::vector<float> dxs;
  if (gathered && dxs.size() < static_cast<size_t>(E * R * I)) dxs.resize(static_cast<size_t>(E * R * I));
  // A plain pointer for the lambda: inside it, the name dxs would be each OpenMP thread's own thread_local.
  float* const dxRows = dxs.data();
  const int32_t* tokens = gathered ? intsAt(heap, tokOff) : nullptr;
  forExperts(E, [&](int64_t e) {
    static thread_local std::vector<float> xs;
    const int r = rows[e];
    const float* dye = heap + dy + e * R * O;
    const float* xe = heap + x + e * R * I;
    float* dxe = gathered ? dxRows + e * R * I : heap + dx + e * R * I;
    float* dwe = heap + dw + e * I * O;
    if (gathered && r > 0) {
      xs.resize(static_cast<size_t>(r) * I);
      gatherTokens(heap + x, tokens + e * R, r, I, xs.data());
      xe = xs.data();
    }
    if (r > 0) {
      gemm(false, true, r, static_cast<int>(I), static_cast<int>(O), dye, heap + w + e * I * O, dxe, nullptr, false);
      gemm(true, false, static_cast<int>(I), static_cast<int>(O), r, xe, dye, dwe, nullptr, false);
    } else {
      std::memset(dwe, 0, sizeof(float) * I * O);
    }
    if (!gathered) std::memset(dxe + static_cast<int64_t>(r) * I, 0, sizeof(float) * (R - r) * I);
    if (db >= 0) columnSums(dye, r, O, 1.0, heap + db + e * O);
  });
  if (gathered) {
    std::memset(heap + dx, 0, sizeof(float) * N * I);
    for (int64_t e = 0; e < E; e++) {
      const int32_t* tok = tokens + e * R;
      for (int64_t i = 0; i < rows[e]; i++) {
        float* dst = heap + dx + (tok[i] - 1) * I;
        const float* src = dxRows + (e * R + i) * I;
        for (int64_t j = 0; j < I; j++) dst[j] += src[j];
      }
    }
  }
  return nullptr;
}

// expertMlp(heap, xOff, tokensOff, rowsOff, w1Off, b1Off, w2Off, b2Off, gatesOff, gateIdxOff, yOff, E, R, H, F, N, G,
//           block[, packed1, packed2]):
// the MoE layer's expert side for inference in one call: y (N, H) = Σ over token t's filled rows i of
// gates[gateIdx[i] − 1] · (gelu(x[tokens[i] − 1] w1_e + b1_e) w2_e + b2_e), e = i / R. Work items of up to 256 rows of
// one expert run on the OpenMP threads (with oneDNN; one after another with OpenBLAS alone): gather, first product,
// GELU and second product with the tile in cache; the combine then runs over token rows in the same call, each
// token's rows added in row order — the order of combineRows, whose values it reproduces, as the products and GELU
// reproduce expertDense's and the gelu kernel's. packed1 / packed2, where given, are arrays of E packWeights handles
// (or nulls) for each expert's w1 (H, F) and w2 (F, H) (packed.cc): the work item's products then run on the packed
// copies, its rows rounded up to a multiple of 16 (zero rows gathered in) so that oneDNN makes at most block / 16
// primitives per shape, with values equal to the row-major products' to float rounding.
napi_value ExpertMlp(napi_env env, napi_callback_info info) {
  napi_value argv[20];
  size_t argc = 20;
  float* heap;
  size_t length;
  int64_t v[17];
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok || (argc != 18 && argc != 20)) {
    napi_throw_type_error(env, nullptr, "vmoe_blas.expertMlp expects 18 arguments, or 20 with packed kernels");
    return nullptr;
  }
  if (!heapArg(env, argv[0], &heap, &length) || !int64Args(env, argv, 1, 17, v)) return nullptr;
  const int64_t x = v[0], tokOff = v[1], rowsOff = v[2], w1 = v[3], b1 = v[4], w2 = v[5], b2 = v[6], gates = v[7];
  const int64_t gateIdx = v[8], y = v[9], E = v[10], R = v[11], H = v[12], F = v[13], N = v[14], G = v[15];
  const int64_t block = v[16];
  if (E < 0 || R < 0 || H < 1 || F < 1 || N < 0 || G < 0 || block < 1 || R > INT32_MAX || H > INT32_MAX ||
      F > INT32_MAX || !inRange(env, x, N * H, length, "vmoe_blas.expertMlp: x outside the heap") ||
      !inRange(env, tokOff, E * R, length, "vmoe_blas.expertMlp: tokens outside the heap") ||
      !inRange(env, rowsOff, E, length, "vmoe_blas.expertMlp: rows outside the heap") ||
      !inRange(env, w1, E * H * F, length, "vmoe_blas.expertMlp: w1 outside the heap") ||
      !inRange(env, b1, E * F, length, "vmoe_blas.expertMlp: b1 outside the heap") ||
      !inRange(env, w2, E * F * H, length, "vmoe_blas.expertMlp: w2 outside the heap") ||
      !inRange(env, b2, E * H, length, "vmoe_blas.expertMlp: b2 outside the heap") ||
      !inRange(env, gates, G, length, "vmoe_blas.expertMlp: gates outside the heap") ||
      !inRange(env, gateIdx, E * R, length, "vmoe_blas.expertMlp: gate indices outside the heap") ||
      !inRange(env, y, N * H, length, "vmoe_blas.expertMlp: y outside the heap") ||
      !expertRows(env, intsAt(heap, rowsOff), E, R) ||
      !expertTokens(env, intsAt(heap, tokOff), intsAt(heap, rowsOff), E, R, N) ||
      !indicesInRange(env, intsAt(heap, gateIdx), E * R, G, "vmoe_blas.expertMlp: gate index out of range")) {
    return nullptr;
  }
  std::vector<const PackedWeights*> packed1(static_cast<size_t>(E), nullptr), packed2(static_cast<size_t>(E), nullptr);
  if (argc == 20 && (!packedListArg(env, argv[18], E, H, F, packed1) || !packedListArg(env, argv[19], E, F, H, packed2))) {
    return nullptr;
  }
  const int32_t* rows = intsAt(heap, rowsOff);
  const int32_t* tokens = intsAt(heap, tokOff);
  const int32_t* gi = intsAt(heap, gateIdx);
  // Work items: (expert, first row) for blocks of up to `block` filled rows.
  std::vector<std::pair<int64_t, int64_t>> items;
  for (int64_t e = 0; e < E; e++)
    for (int64_t r0 = 0; r0 < rows[e]; r0 += block) items.emplace_back(e, r0);
  // The experts' output rows; only filled rows are written and read, so left uninitialised (no E·R·H zeroing).
  const std::unique_ptr<float[]> out(new float[static_cast<size_t>(E * R * H)]);
  const int64_t nItems = static_cast<int64_t>(items.size());
  const auto run = [&](int64_t k, std::vector<float>& scratch) {
    const int64_t e = items[k].first, r0 = items[k].second;
    const int r = static_cast<int>(std::min(block, rows[e] - r0));
    const bool packed = packed1[e] != nullptr && packed2[e] != nullptr;
    const int rp = packed ? (r + 15) / 16 * 16 : r;  // rows computed: padded to 16 on the packed path
    scratch.resize(static_cast<size_t>(rp) * (2 * H + 2 * F));
    float* xs = scratch.data();
    float* f = xs + static_cast<int64_t>(rp) * H;
    float* g = f + static_cast<int64_t>(rp) * F;
    float* dst = out.get() + (e * R + r0) * H;
    gatherTokens(heap + x, tokens + e * R + r0, r, H, xs);
    if (packed) {
      // The padding rows: zeros in, their (finite) outputs computed and dropped.
      std::memset(xs + static_cast<int64_t>(r) * H, 0, sizeof(float) * static_cast<size_t>(rp - r) * H);
      float* o = g + static_cast<int64_t>(rp) * F;
      gemmPrepacked(rp, static_cast<int>(F), static_cast<int>(H), xs, heap + w1 + e * H * F, packed1[e], f, heap + b1 + e * F);
      geluForward(f, g, static_cast<int64_t>(rp) * F);
      gemmPrepacked(rp, static_cast<int>(H), static_cast<int>(F), g, heap + w2 + e * F * H, packed2[e], o, heap + b2 + e * H);
      std::memcpy(dst, o, sizeof(float) * static_cast<size_t>(r) * H);
      return;
    }
    gemm(false, false, r, static_cast<int>(F), static_cast<int>(H), xs, heap + w1 + e * H * F, f, heap + b1 + e * F, false);
    geluForward(f, g, static_cast<int64_t>(r) * F);
    gemm(false, false, r, static_cast<int>(H), static_cast<int>(F), g, heap + w2 + e * F * H, dst, heap + b2 + e * H, false);
  };
  // Each token's rows in row order (its first row, then a chain), for the combine.
  std::vector<int32_t> first(static_cast<size_t>(N), -1), next(static_cast<size_t>(E * R), -1), last(static_cast<size_t>(N), -1);
  for (int64_t e = 0; e < E; e++) {
    for (int64_t i = e * R; i < e * R + rows[e]; i++) {
      if (gi[i] == 0) continue;
      const int64_t t = tokens[i] - 1;
      if (first[t] < 0) first[t] = static_cast<int32_t>(i);
      else next[last[t]] = static_cast<int32_t>(i);
      last[t] = static_cast<int32_t>(i);
    }
  }
  float* yy = heap + y;
  const auto combine = [&](int64_t t) {
    float* dst = yy + t * H;
    std::memset(dst, 0, sizeof(float) * H);
    for (int32_t i = first[t]; i >= 0; i = next[i]) {
      const float gv = heap[gates + gi[i] - 1];
      const float* row = out.get() + static_cast<int64_t>(i) * H;
      for (int64_t j = 0; j < H; j++) dst[j] += gv * row[j];
    }
  };
#ifdef _OPENMP
  if (useDnnl && nItems > 1) {
#pragma omp parallel
    {
      std::vector<float> scratch;
#pragma omp for schedule(dynamic, 1)
      for (int64_t k = 0; k < nItems; k++) run(k, scratch);
#pragma omp for schedule(static)
      for (int64_t t = 0; t < N; t++) combine(t);
    }
    return nullptr;
  }
#endif
  std::vector<float> scratch;
  for (int64_t k = 0; k < nItems; k++) run(k, scratch);
  for (int64_t t = 0; t < N; t++) combine(t);
  return nullptr;
}

}  // namespace vmoe
