// Router noise: normals, the ziggurat of src/util/rng.ts (Rng.normals) bit for bit.

#include "common.h"

namespace vmoe {

namespace {

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

}  // namespace

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

}  // namespace vmoe
