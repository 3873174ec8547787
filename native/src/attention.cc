// Multi-head self-attention on the fused qkv projection: attention and attentionGrad, per
// (image, head) two or four products through sgemmRowMajor with the softmax of elementwise.cc.

#include "common.h"

namespace vmoe {

namespace {

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

}  // namespace

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
