// Multi-head self-attention on the fused qkv projection: attention (attendImage per image: 16-lane register tiles,
// no GEMM calls; also the encoder block's, block.cc) and attentionGrad (per (image, head) four products through
// sgemmRowMajor with the softmax gradient of elementwise.cc), images in parallel on the OpenMP threads.

#include "common.h"

namespace vmoe {

namespace {

// 16 floats as one value: GCC's vector extension, which each target_clones variant lowers to its own registers
// (one zmm, two ymm, four xmm) — so every helper below is always_inline: one compiled on its own would get the
// baseline ISA. Plain float arrays as accumulators were kept on the stack across the loops below,
// a store-to-load chain per step that made the kernel 2× slower than per-head GEMM calls.
typedef float v16 __attribute__((vector_size(64)));
__attribute__((always_inline)) inline v16 load16(const float* p) {
  v16 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
__attribute__((always_inline)) inline void store16(float* p, v16 v) { std::memcpy(p, &v, sizeof v); }

// Scores of R query rows (rows of q, stride ldq) against 16·V columns of a head's transposed keys kT (hd, ldk):
// acc[r][c] = Σ_d q[r, d] kT[d, 16c ..]. R·V accumulators stay in registers over the head dimension; R = 4, V = 4
// gives 16 independent FMA chains per step, enough to keep both FMA units busy.
template <int R, int V>
__attribute__((always_inline)) inline void scoreAcc(const float* __restrict q, int64_t ldq, const float* __restrict kT,
                                                    int64_t ldk, int hd, v16 (&acc)[R][V]) {
#pragma GCC unroll 16
  for (int r = 0; r < R; r++)
#pragma GCC unroll 16
    for (int c = 0; c < V; c++) acc[r][c] = v16{};
  for (int d = 0; d < hd; d++) {
    v16 k[V];
#pragma GCC unroll 16
    for (int c = 0; c < V; c++) k[c] = load16(kT + d * ldk + 16 * c);
#pragma GCC unroll 16
    for (int r = 0; r < R; r++) {
      const float qd = q[r * ldq + d];
#pragma GCC unroll 16
      for (int c = 0; c < V; c++) acc[r][c] += qd * k[c];
    }
  }
}

// scoreAcc stored into s (R, lds).
template <int R, int V>
__attribute__((always_inline)) inline void scoreTile(const float* __restrict q, int64_t ldq, const float* __restrict kT, int64_t ldk, int hd,
                      float* __restrict s, int64_t lds) {
  v16 acc[R][V];
  scoreAcc<R, V>(q, ldq, kT, ldk, hd, acc);
#pragma GCC unroll 16
  for (int r = 0; r < R; r++)
#pragma GCC unroll 16
    for (int c = 0; c < V; c++) store16(s + r * lds + 16 * c, acc[r][c]);
}

// All Tp (a multiple of 16) score columns of R rows: 64 columns at a time, then 16.
template <int R>
__attribute__((always_inline)) inline void scoreRows(const float* q, int64_t ldq, const float* kT, int Tp, int hd, float* s) {
  int c = 0;
  for (; c + 64 <= Tp; c += 64) scoreTile<R, 4>(q, ldq, kT + c, Tp, hd, s + c, Tp);
  for (; c < Tp; c += 16) scoreTile<R, 1>(q, ldq, kT + c, Tp, hd, s + c, Tp);
}

// Vector forms of common.h's expSmall (the same steps, 16 lanes; casts between same-size vector types reinterpret
// the bits) and of the lane reductions.
typedef int32_t v16i __attribute__((vector_size(64)));
__attribute__((always_inline)) inline v16 expVec(v16 x) {
  v16 shifted;
  const v16 p = expSeries(x, &shifted);
  const v16i bits = ((v16i)shifted - bitsOf(kExpMagic) + 127) << 23;
  return p * (v16)bits;
}
__attribute__((always_inline)) inline v16 maxVec(v16 a, v16 b) { return b > a ? b : a; }
// e^d for d = s − max ≤ 0 as softmaxRows takes it: below −87 it is 0 (also for −∞); NaN stays NaN.
__attribute__((always_inline)) inline v16 expShifted(v16 d) {
  const v16 e = expVec(d < -87.0f ? v16{} - 87.0f : d);
  return d < -87.0f ? v16{} : e;
}
__attribute__((always_inline)) inline float laneMaxOf(v16 v) {
  float x[16];
  std::memcpy(x, &v, sizeof x);
  return treeMax<16>(x);
}
__attribute__((always_inline)) inline float laneSumOf(v16 v) {
  float x[16];
  std::memcpy(x, &v, sizeof x);
  return treeSum<16>(x);
}

// e = e^{s − max} of one padded row of V vectors (padding lanes −∞, so e = 0 there), in place; returns 1/Σ e.
// As softmaxRows: max subtracted, e^x below −87 taken as 0, NaN spreading to the row. The division by the sum is
// left to the caller (applied once to each output row instead of to every probability).
template <int V>
__attribute__((always_inline)) inline float expRow(v16* s) {
  v16 m = s[0];
#pragma GCC unroll 16
  for (int c = 1; c < V; c++) m = maxVec(m, s[c]);
  const float max = laneMaxOf(m);
  v16 sum = {};
#pragma GCC unroll 16
  for (int c = 0; c < V; c++) {
    s[c] = expShifted(s[c] - max);
    sum += s[c];
  }
  return 1.0f / laneSumOf(sum);
}

// Scores, scaled and masked, and their exponentials for R query rows when the keys fit one tile (Tp = 16·V ≤ 64):
// the scores never leave the registers between the product and the exponential. p (R, Tp) gets e, inv (R) 1/Σ e.
template <int R, int V>
__attribute__((always_inline)) inline void scoreExpTile(const float* __restrict q, int64_t ldq, const float* __restrict kT,
                                                        int hd, float scale, const float* __restrict maskAdd,
                                                        float* __restrict p, float* __restrict inv) {
  constexpr int Tp = 16 * V;
  v16 acc[R][V];
  scoreAcc<R, V>(q, ldq, kT, Tp, hd, acc);
#pragma GCC unroll 16
  for (int r = 0; r < R; r++) {
#pragma GCC unroll 16
    for (int c = 0; c < V; c++) acc[r][c] = acc[r][c] * scale + load16(maskAdd + 16 * c);
    inv[r] = expRow<V>(acc[r]);
#pragma GCC unroll 16
    for (int c = 0; c < V; c++) store16(p + r * Tp + 16 * c, acc[r][c]);
  }
}

// e and 1/Σ e of one row of Tp > 64 scores (s, already scaled and padded with −∞), in place, 16 lanes at a time.
__attribute__((always_inline)) inline float expRowLong(float* s, int Tp) {
  v16 m = load16(s);
  for (int c = 16; c < Tp; c += 16) m = maxVec(m, load16(s + c));
  const float max = laneMaxOf(m);
  v16 sum = {};
  for (int c = 0; c < Tp; c += 16) {
    const v16 z = expShifted(load16(s + c) - max);
    store16(s + c, z);
    sum += z;
  }
  return 1.0f / laneSumOf(sum);
}

// o[r, :] = inv[r] Σ_j p[r, j] v[j, :] for R rows and a head dimension of 16·V, in two interleaved partial sums
// over j (2·R·V independent chains; each value row is loaded once for all R rows), added at the end.
template <int R, int V>
__attribute__((always_inline)) inline void weightedTile(const float* __restrict p, int64_t ldp, const float* __restrict v, int64_t ldv, int T,
                         float* __restrict o, int64_t ldo, const float* __restrict inv) {
  v16 a[R][V], b[R][V];
#pragma GCC unroll 16
  for (int r = 0; r < R; r++)
#pragma GCC unroll 16
    for (int u = 0; u < V; u++) a[r][u] = b[r][u] = v16{};
  int j = 0;
  for (; j + 2 <= T; j += 2) {
    v16 v0[V], v1[V];
#pragma GCC unroll 16
    for (int u = 0; u < V; u++) {
      v0[u] = load16(v + j * ldv + 16 * u);
      v1[u] = load16(v + (j + 1) * ldv + 16 * u);
    }
#pragma GCC unroll 16
    for (int r = 0; r < R; r++) {
      const float p0 = p[r * ldp + j], p1 = p[r * ldp + j + 1];
#pragma GCC unroll 16
      for (int u = 0; u < V; u++) {
        a[r][u] += p0 * v0[u];
        b[r][u] += p1 * v1[u];
      }
    }
  }
  if (j < T) {
#pragma GCC unroll 16
    for (int r = 0; r < R; r++)
#pragma GCC unroll 16
      for (int u = 0; u < V; u++) a[r][u] += p[r * ldp + j] * load16(v + j * ldv + 16 * u);
  }
#pragma GCC unroll 16
  for (int r = 0; r < R; r++)
#pragma GCC unroll 16
    for (int u = 0; u < V; u++) store16(o + r * ldo + 16 * u, (a[r][u] + b[r][u]) * inv[r]);
}

// weightedTile for R rows at any head dimension: vector tiles for hd = 16, 32, 64 (4 rows at 16 and 32, 2 at 64,
// to stay within the 32 vector registers), a plain loop otherwise.
template <int R>
__attribute__((always_inline)) inline void weightedRows(const float* p, int64_t ldp, const float* v, int64_t ldv, int T, int hd, float* o,
                                                        int64_t ldo, const float* inv) {
  switch (hd) {
    case 16: return weightedTile<R, 1>(p, ldp, v, ldv, T, o, ldo, inv);
    case 32: return weightedTile<R, 2>(p, ldp, v, ldv, T, o, ldo, inv);
    case 64:
      if constexpr (R % 2 == 0) {
        for (int r = 0; r < R; r += 2) weightedTile<2, 4>(p + r * ldp, ldp, v, ldv, T, o + r * ldo, ldo, inv + r);
      } else {
        for (int r = 0; r < R; r++) weightedTile<1, 4>(p + r * ldp, ldp, v, ldv, T, o + r * ldo, ldo, inv + r);
      }
      return;
    default: break;
  }
  for (int r = 0; r < R; r++) {
    float* orow = o + r * ldo;
    for (int d = 0; d < hd; d++) orow[d] = 0.0f;
    for (int j = 0; j < T; j++) {
      for (int d = 0; d < hd; d++) orow[d] += p[r * ldp + j] * v[j * ldv + d];
    }
    for (int d = 0; d < hd; d++) orow[d] *= inv[r];
  }
}

// Multi-head self-attention core on the fused qkv projection, without transposes:
// qkv is row-major (batch·T, 3H) with columns [q | k | v], each head-major (head h owns
// columns h·hd … h·hd+hd−1 of its third), H = heads·hd. Per (image, head):
//   P = softmax(scale · q kᵀ) (saved in probs (batch·heads, T, T)), out_h = P v,
// by attendImage (below), images spread over the OpenMP threads.
void attentionForward(const float* qkv, float* out, float* probs, int64_t batch, int T, int heads, int hd, float scale) {
  const int H = heads * hd;
  const int64_t need = attendScratchFloats(T, hd);
#ifdef _OPENMP
#pragma omp parallel if (batch > 1)
#endif
  {
    std::vector<float> scratch(static_cast<size_t>(need));
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
    for (int64_t b = 0; b < batch; b++) {
      attendImage(qkv + b * T * 3 * H, out + b * T * H, H, probs + b * heads * static_cast<int64_t>(T) * T, T, heads, hd,
                  scale, scratch.data());
    }
  }
}

// The gradient of attentionForward: dqkv (batch·T, 3H) from dy (batch·T, H), qkv and the saved probs.
//   dP = dy_h vᵀ, dv = Pᵀ dy_h, dS = P ⊙ (dP − rowsum(dP ⊙ P)), dq = scale · dS k, dk = scale · dSᵀ q.
void attentionBackward(const float* dy, const float* qkv, const float* probs, float* dqkv, int64_t batch, int T, int heads,
                       int hd, float scale) {
  const int H = heads * hd, ld = 3 * H;
  // Images in parallel where the products are oneDNN's, which runs each one single-threaded inside the region
  // (OpenBLAS's own threads would be asked for from two threads at once); each image writes only its own dqkv rows.
#ifdef _OPENMP
#pragma omp parallel if (useDnnl && batch > 1)
#endif
  {
    std::vector<float> dp(static_cast<size_t>(T) * T), ds(static_cast<size_t>(T) * T);
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
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
}

bool attentionDims(napi_env env, int64_t batch, int64_t T, int64_t heads, int64_t hd) {
  if (batch < 0 || T < 1 || heads < 1 || hd < 1 || T > 65536 || heads * hd > (INT32_MAX / 3) ||
      (batch > 0 && T * 3 * heads * hd > INT64_MAX / batch)) {
    napi_throw_range_error(env, nullptr, "vmoe_blas.attention: bad dimensions");
    return false;
  }
  return true;
}

}  // namespace

int64_t attendScratchFloats(int T, int hd) {
  const int64_t Tp = (T + 15) / 16 * 16;
  return static_cast<int64_t>(hd) * Tp + 5 * Tp;
}

namespace {

// e and 1/Σ e for `rows` (≤ 4) query rows starting at q into p (rows, Tp) and inv: with the keys in one tile
// (Tp ≤ 64) straight from the registers, else via the scores in p.
template <int R>
__attribute__((always_inline)) inline void scoreExpRows(const float* q, int64_t ldq, const float* kT, int T, int Tp, int hd,
                                                        float scale, const float* maskAdd, float* p, float* inv) {
  switch (Tp) {
    case 16: return scoreExpTile<R, 1>(q, ldq, kT, hd, scale, maskAdd, p, inv);
    case 32: return scoreExpTile<R, 2>(q, ldq, kT, hd, scale, maskAdd, p, inv);
    case 48: return scoreExpTile<R, 3>(q, ldq, kT, hd, scale, maskAdd, p, inv);
    case 64: return scoreExpTile<R, 4>(q, ldq, kT, hd, scale, maskAdd, p, inv);
    default: break;
  }
  scoreRows<R>(q, ldq, kT, Tp, hd, p);
  for (int r = 0; r < R; r++) {
    float* row = p + r * Tp;
    for (int j = 0; j < T; j++) row[j] *= scale;
    for (int j = T; j < Tp; j++) row[j] = -INFINITY;
    inv[r] = expRowLong(row, Tp);
  }
}

}  // namespace

// Per head: its keys transposed once into kT (hd, Tp) (Tp = T rounded up to 16, padding columns 0), then per block
// of 4 query rows the scores (vectorised over keys) and their exponentials — for T ≤ 64 without leaving the
// registers — and the weighted sum of the value rows (vectorised over the head dimension), divided by the row's
// Σ e at the end. Scratch of a few thousand floats stays in L1, where per-(image, head) GEMM calls spent most of
// their time in call and packing overhead at these sizes (T = 50, hd = 16: 1024 calls of 50×50×16 per tiny-model
// batch).
__attribute__((target_clones("avx512f", "avx2", "default")))
void attendImage(const float* qkv, float* out, int64_t ldOut, float* probs, int T, int heads, int hd, float scale,
                 float* scratch) {
  const int H = heads * hd;
  const int64_t ld = 3 * static_cast<int64_t>(H);
  const int Tp = (T + 15) / 16 * 16;
  float* kT = scratch;
  float* p = kT + static_cast<int64_t>(hd) * Tp;  // (4, Tp): e^{s − max} of one block of rows
  float* maskAdd = p + 4 * static_cast<int64_t>(Tp);  // (Tp): 0 for the T keys, −∞ for the padding
  for (int j = 0; j < Tp; j++) maskAdd[j] = j < T ? 0.0f : -INFINITY;
  float inv[4];
  for (int h = 0; h < heads; h++) {
    const float* q = qkv + h * hd;
    const float* k = qkv + H + h * hd;
    const float* v = qkv + 2 * H + h * hd;
    for (int d = 0; d < hd; d++) {
      float* row = kT + static_cast<int64_t>(d) * Tp;
      for (int j = 0; j < T; j++) row[j] = k[j * ld + d];
      for (int j = T; j < Tp; j++) row[j] = 0.0f;
    }
    for (int i = 0; i < T; i += 4) {
      const int rows = std::min(4, T - i);
      float* o = out + i * ldOut + h * hd;
      if (rows == 4) {
        scoreExpRows<4>(q + i * ld, ld, kT, T, Tp, hd, scale, maskAdd, p, inv);
        weightedRows<4>(p, Tp, v, ld, T, hd, o, ldOut, inv);
      } else {
        for (int r = 0; r < rows; r++) {
          scoreExpRows<1>(q + (i + r) * ld, ld, kT, T, Tp, hd, scale, maskAdd, p + r * Tp, inv + r);
          weightedRows<1>(p + r * Tp, Tp, v, ld, T, hd, o + r * ldOut, ldOut, inv + r);
        }
      }
      if (probs != nullptr) {
        for (int r = 0; r < rows; r++) {
          float* dst = probs + (static_cast<int64_t>(h) * T + i + r) * T;
          for (int j = 0; j < T; j++) dst[j] = p[r * Tp + j] * inv[r];
        }
      }
    }
  }
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

}  // namespace vmoe
