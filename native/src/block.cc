// The encoder for inference in two kinds of calls. patchEmbed: patches, their product, class token and positions.
// encoderBlock: a pre-LN Transformer block (LayerNorm, fused q|k|v product, multi-head attention, output product +
// residual, LayerNorm, and for a dense block the MLP product + GELU, second product + residual) tile by tile over
// the batch. A tile is a few images whose activations (~3 KB a row at hidden 64) stay in the L2 cache from the
// first LayerNorm to the last residual add, and tiles run in parallel on the OpenMP threads, each with
// single-threaded products: every op of the block is spread over the cores, where the op-by-op path ran LayerNorm,
// attention, GELU and the adds on one core and paid a JavaScript↔native crossing and a heap round trip per op.
//
// Axes: B images, T tokens, H hidden, heads × hd = H, F the MLP width, R = rows of a tile (images · T).
// Every step is a kernel the op-by-op forward runs too (gemm(), elementwise.cc's LayerNorm and GELU, attention.cc's
// attendImage), except that the products after the first leave their bias to the pass that reads them (residual add,
// GELU), which adds it to the product first (as tf.add(x, dense(...)) and gelu(dense(...)) see it), so the two agree
// to float rounding (tests/vmoe/inference.test.ts).

#include "common.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace vmoe {
namespace {

struct BlockWeights {
  const float *ln1s, *ln1b, *wqkv, *bqkv, *wo, *bo, *ln2s, *ln2b, *w1, *b1, *w2, *b2;
  // The four product weights packed once for oneDNN's matmul (packed.cc), each null where not given.
  const PackedWeights *pqkv = nullptr, *po = nullptr, *p1 = nullptr, *p2 = nullptr;
};

struct BlockDims {
  int T, H, heads, F;
  float eps;
  bool mlp;  // dense block: the MLP runs too; else the block stops after the attention half (MoE blocks)
};

// Floats of scratch one tile of R rows needs: h (R, H), qkv (R, 3H), a (R, H), x1 (R, H), f and g (R, F),
// attention's own.
int64_t tileScratchFloats(int64_t R, const BlockDims& d) {
  const int64_t F = d.mlp ? d.F : 0;
  return R * (6 * static_cast<int64_t>(d.H) + 2 * F) + attendScratchFloats(d.T, d.H / d.heads);
}

// out = x + (y + bias) over rows of H: a residual add with the bias of the product y.
void addResidual(const float* x, const float* y, const float* bias, float* out, int R, int H) {
  for (int r = 0; r < R; r++) {
    const int64_t o = static_cast<int64_t>(r) * H;
    for (int j = 0; j < H; j++) out[o + j] = x[o + j] + (y[o + j] + bias[j]);
  }
}

// The block on one tile of `images` images: x, out (R, H); out2 (R, H) in attention-only mode.
void blockTile(const float* x, float* out, float* out2, int images, const BlockWeights& w, const BlockDims& d,
               float* scratch) {
  const int T = d.T, H = d.H, F = d.F, hd = H / d.heads;
  const int R = images * T;
  const int64_t RH = static_cast<int64_t>(R) * H;
  float* h = scratch;         // (R, H): LN1(x), then the attention output product, then LN2(x1), then the MLP output
  float* qkv = h + RH;        // (R, 3H)
  float* a = qkv + 3 * RH;    // (R, H): merged heads
  float* x1 = a + RH;         // (R, H): x + attention (in out itself in attention-only mode)
  float* f = x1 + RH;         // (R, F): the MLP's pre-activation
  float* g = f + static_cast<int64_t>(R) * (d.mlp ? F : 0);  // (R, F): its GELU
  float* att = g + static_cast<int64_t>(R) * (d.mlp ? F : 0);
  if (!d.mlp) x1 = out;

  layerNormForward(x, w.ln1s, w.ln1b, h, R, H, d.eps);
  gemmPrepacked(R, 3 * H, H, h, w.wqkv, w.pqkv, qkv, w.bqkv);
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  for (int i = 0; i < images; i++) {
    attendImage(qkv + static_cast<int64_t>(i) * T * 3 * H, a + static_cast<int64_t>(i) * T * H, H, nullptr, T, d.heads,
                hd, scale, att);
  }
  // The products after the first leave their bias to the pass that reads them (residual add, GELU) rather than
  // copying it into every row first; that pass adds it to the product before anything else, as the product's own
  // bias rows would.
  gemmPrepacked(R, H, H, a, w.wo, w.po, h, nullptr);
  addResidual(x, h, w.bo, x1, R, H);
  if (!d.mlp) {
    layerNormForward(x1, w.ln2s, w.ln2b, out2, R, H, d.eps);
    return;
  }
  layerNormForward(x1, w.ln2s, w.ln2b, h, R, H, d.eps);
  gemmPrepacked(R, F, H, h, w.w1, w.p1, f, nullptr);
  geluBiasForward(f, w.b1, g, R, F);
  gemmPrepacked(R, H, F, g, w.w2, w.p2, h, nullptr);
  addResidual(x1, h, w.b2, out, R, H);
}

// run(t, scratch) for t in [0, tiles), each call with its thread's scratch of scratchFloats floats: in parallel on
// the OpenMP threads only where the products are oneDNN's (it runs each one single-threaded inside the region;
// OpenBLAS's own threads would be asked for from two threads at once), else one after another.
template <typename Run>
void forEachTile(int64_t tiles, int64_t scratchFloats, const Run& run) {
#ifdef _OPENMP
  if (useDnnl && tiles > 1) {
#pragma omp parallel
    {
      std::vector<float> scratch(static_cast<size_t>(scratchFloats));
#pragma omp for schedule(dynamic, 1)
      for (int64_t t = 0; t < tiles; t++) run(t, scratch.data());
    }
    return;
  }
#endif
  std::vector<float> scratch(static_cast<size_t>(scratchFloats));
  for (int64_t t = 0; t < tiles; t++) run(t, scratch.data());
}

}  // namespace

// encoderBlock(heap, xOff, outOff, out2Off, ln1s, ln1b, wqkv, bqkv, wo, bo, ln2s, ln2b, w1, b1, w2, b2,
//              B, T, H, heads, F, tileImages, eps[, packed qkv, out, fc1, fc2 kernels])
// x, out (B·T, H). With F > 0 a dense block: out = x1 + (gelu(LN2(x1) W1 + b1) W2 + b2), x1 = x + attn(LN1(x)) Wo + bo
// (out2Off, w1 … b2 unused). With F = 0 the attention half of an MoE block: out = x1 and out2 = LN2(x1), the MoE
// layer's input. Tiles of tileImages images; with oneDNN (OpenMP) they run in parallel, each thread's products
// single-threaded; with OpenBLAS alone one after another, each product on OpenBLAS's threads. The optional packed
// kernels (packWeights externals or null) run those products with oneDNN's matmul on weights packed once.
napi_value EncoderBlock(napi_env env, napi_callback_info info) {
  napi_value argv[27];
  size_t argc = 27;
  float* heap;
  size_t length;
  int64_t v[21];
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok || (argc != 23 && argc != 27)) {
    napi_throw_type_error(env, nullptr, "vmoe_blas.encoderBlock expects 23 arguments, or 27 with packed kernels");
    return nullptr;
  }
  if (!heapArg(env, argv[0], &heap, &length) || !int64Args(env, argv, 1, 21, v)) return nullptr;
  double eps;
  NAPI_OK(napi_get_value_double(env, argv[22], &eps));
  const int64_t xOff = v[0], outOff = v[1], out2Off = v[2];
  const int64_t B = v[15], T = v[16], H = v[17], heads = v[18], F = v[19], tileImages = v[20];
  if (B < 0 || T < 1 || H < 1 || heads < 1 || H % heads != 0 || F < 0 || tileImages < 1 || T > 65536 ||
      H > (1 << 20) || F > (1 << 24) || T * tileImages > INT32_MAX / 8) {
    napi_throw_range_error(env, nullptr, "vmoe_blas.encoderBlock: bad dimensions");
    return nullptr;
  }
  const bool mlp = F > 0;
  const int64_t n = B * T * H;
  // ln1 scale, bias; qkv kernel, bias; out kernel, bias; ln2 scale, bias; fc1 kernel, bias; fc2 kernel, bias.
  const int64_t sizes[12] = {H, H, H * 3 * H, 3 * H, H * H, H, H, H, H * F, F, F * H, H};
  const float* ptrs[12];
  for (int i = 0; i < 12; i++) {
    const bool used = mlp || i < 8;
    if (used && !inRange(env, v[3 + i], sizes[i], length, "vmoe_blas.encoderBlock: a weight lies outside the heap")) {
      return nullptr;
    }
    ptrs[i] = used ? heap + v[3 + i] : nullptr;
  }
  if (!inRange(env, xOff, n, length, "vmoe_blas.encoderBlock: x outside the heap") ||
      !inRange(env, outOff, n, length, "vmoe_blas.encoderBlock: out outside the heap") ||
      (!mlp && !inRange(env, out2Off, n, length, "vmoe_blas.encoderBlock: out2 outside the heap"))) {
    return nullptr;
  }
  BlockWeights w{ptrs[0], ptrs[1], ptrs[2], ptrs[3], ptrs[4], ptrs[5],
                 ptrs[6], ptrs[7], ptrs[8], ptrs[9], ptrs[10], ptrs[11]};
  if (argc == 27 && (!packedArg(env, argv[23], &w.pqkv, H, 3 * H) || !packedArg(env, argv[24], &w.po, H, H) ||
                     (mlp && (!packedArg(env, argv[25], &w.p1, H, F) || !packedArg(env, argv[26], &w.p2, F, H))))) {
    return nullptr;
  }
  const BlockDims d{static_cast<int>(T), static_cast<int>(H), static_cast<int>(heads), static_cast<int>(F),
                    static_cast<float>(eps), mlp};
  const int64_t tiles = (B + tileImages - 1) / tileImages;
  const int64_t need = tileScratchFloats(tileImages * T, d);
  const float* x = heap + xOff;
  float* out = heap + outOff;
  float* out2 = mlp ? nullptr : heap + out2Off;
  const auto run = [&](int64_t t, float* scratch) {
    const int64_t first = t * tileImages;
    const int images = static_cast<int>(std::min(tileImages, B - first));
    const int64_t off = first * T * H;
    blockTile(x + off, out + off, out2 ? out2 + off : nullptr, images, w, d, scratch);
  };
  forEachTile(tiles, need, run);
  return nullptr;
}

// patchEmbed(heap, imagesOff, kernelOff, biasOff, clsOff, posOff, outOff, B, S, C, p, H, tileImages)
// images (B, S, S, C) → tokens (B, T, H): each p×p patch flattened (row, column, channel) times the kernel (p²C, H)
// plus the bias, a class token row first when clsOff ≥ 0 (T = g² + 1, g = S / p; else T = g²), then the position
// embedding pos (T, H) added — the values of VisionMoE.embed's patchify, dense, concat and add, in one call. Tiles of
// tileImages images gather their patches into one matrix for one product; in parallel as encoderBlock's tiles.
napi_value PatchEmbed(napi_env env, napi_callback_info info) {
  napi_value argv[13];
  float* heap;
  size_t length;
  int64_t v[12];
  if (!heapKernelArgs(env, info, 13, argv, "vmoe_blas.patchEmbed expects 13 arguments", &heap, &length, 12, v))
    return nullptr;
  const int64_t imgOff = v[0], wOff = v[1], bOff = v[2], clsOff = v[3], posOff = v[4], outOff = v[5];
  const int64_t B = v[6], S = v[7], C = v[8], p = v[9], H = v[10], tileImages = v[11];
  if (B < 0 || S < 1 || C < 1 || p < 1 || S % p != 0 || H < 1 || tileImages < 1 || S > 65536 || C > 65536 ||
      H > (1 << 20) || p * p * C > (1 << 24)) {
    napi_throw_range_error(env, nullptr, "vmoe_blas.patchEmbed: bad dimensions");
    return nullptr;
  }
  const int64_t g = S / p, P = g * g, K = p * p * C, T = P + (clsOff >= 0 ? 1 : 0);
  if (!inRange(env, imgOff, B * S * S * C, length, "vmoe_blas.patchEmbed: images outside the heap") ||
      !inRange(env, wOff, K * H, length, "vmoe_blas.patchEmbed: kernel outside the heap") ||
      !inRange(env, bOff, H, length, "vmoe_blas.patchEmbed: bias outside the heap") ||
      (clsOff >= 0 && !inRange(env, clsOff, H, length, "vmoe_blas.patchEmbed: cls outside the heap")) ||
      !inRange(env, posOff, T * H, length, "vmoe_blas.patchEmbed: pos outside the heap") ||
      !inRange(env, outOff, B * T * H, length, "vmoe_blas.patchEmbed: out outside the heap")) {
    return nullptr;
  }
  const float* images = heap + imgOff;
  const float* pos = heap + posOff;
  float* out = heap + outOff;
  const int64_t tiles = (B + tileImages - 1) / tileImages;
  const auto run = [&](int64_t t, float* scratch) {
    const int64_t first = t * tileImages, n = std::min(tileImages, B - first);
    float* patches = scratch;                // (n·P, K)
    float* tokens = patches + n * P * K;     // (n·P, H)
    for (int64_t i = 0; i < n; i++) {
      const float* img = images + (first + i) * S * S * C;
      for (int64_t gi = 0; gi < g; gi++)
        for (int64_t gj = 0; gj < g; gj++)
          for (int64_t pi = 0; pi < p; pi++) {
            std::memcpy(patches + ((i * P + gi * g + gj) * p + pi) * p * C, img + ((gi * p + pi) * S + gj * p) * C,
                        sizeof(float) * p * C);
          }
    }
    gemm(false, false, static_cast<int>(n * P), static_cast<int>(H), static_cast<int>(K), patches, heap + wOff, tokens,
         heap + bOff, false);
    for (int64_t i = 0; i < n; i++) {
      float* o = out + (first + i) * T * H;
      int64_t row = 0;
      if (clsOff >= 0) {
        for (int64_t j = 0; j < H; j++) o[j] = heap[clsOff + j] + pos[j];
        row = 1;
      }
      for (int64_t r = 0; r < P; r++, row++) {
        const float* e = tokens + (i * P + r) * H;
        for (int64_t j = 0; j < H; j++) o[row * H + j] = e[j] + pos[row * H + j];
      }
    }
  };
  forEachTile(tiles, std::min(tileImages, B) * P * (K + H), run);
  return nullptr;
}

}  // namespace vmoe
