// Weights packed once for oneDNN's matmul (docs/performance.md §5): packWeights copies a (K, N) row-major weight into
// the blocked layout oneDNN's matmul primitive picks for it and hands JavaScript an external that owns the copy (the
// inference path keeps one per weight tensor, and the tensor's data never changes while it lives); gemmPacked runs a
// product with it. dnnl_sgemm, which every other product goes through, packs B again on every call — once per tile
// of every encoder block. Without oneDNN packWeights returns null and the callers use the row-major weights.
//
// Axes: M rows of A and C, K the inner size, N columns of B and C.

#include "common.h"

#include <map>
#include <mutex>
#include <tuple>

namespace vmoe {

#ifdef VMOE_HAVE_DNNL
namespace {

dnnl_engine_t cpuEngine() {
  static dnnl_engine_t engine = [] {
    dnnl_engine_t e = nullptr;
    if (dnnl_engine_create(&e, dnnl_cpu, 0) != dnnl_success) e = nullptr;
    return e;
  }();
  return engine;
}

// One stream per thread: a oneDNN stream is not to be shared between threads that execute at once.
dnnl_stream_t threadStream() {
  static thread_local dnnl_stream_t stream = [] {
    dnnl_stream_t s = nullptr;
    if (cpuEngine() == nullptr || dnnl_stream_create(&s, cpuEngine(), dnnl_stream_default_flags) != dnnl_success)
      s = nullptr;
    return s;
  }();
  return stream;
}

dnnl_memory_desc_t plainDesc(int64_t rows, int64_t cols) {
  dnnl_memory_desc_t md;
  const dnnl_dims_t dims = {rows, cols};
  dnnl_memory_desc_init_by_tag(&md, 2, dims, dnnl_f32, dnnl_ab);
  return md;
}

// Sets the calling task's OpenMP thread count to 1 for its lifetime. oneDNN splits a primitive's work for the
// threads it sees when the primitive is made; ours run inside the tiles' parallel region, one product per thread, so
// they must be made for one thread (made for two, a primitive run by one thread in a nested region left half of C
// unwritten).
struct OneThread {
  int saved;
  OneThread() : saved(omp_get_max_threads()) { omp_set_num_threads(1); }
  ~OneThread() { omp_set_num_threads(saved); }
};

// The matmul primitive for (M, K, N) with weights in `wmd`, made once per shape for one thread and kept (executing
// one primitive from several threads at once is allowed); null where oneDNN has no implementation for it.
// Its scratchpad is the caller's (user mode): the library's own is one buffer for all threads unless oneDNN was
// built for concurrent execution, and two tiles running one primitive at once overwrote each other's.
struct Matmul {
  dnnl_primitive_t prim = nullptr;
  dnnl_memory_desc_t scratch;
  size_t scratchBytes = 0;
};

const Matmul& matmulFor(int64_t M, int64_t K, int64_t N, const dnnl_memory_desc_t& wmd) {
  static std::mutex lock;
  static std::map<std::tuple<int64_t, int64_t, int64_t, uint64_t>, Matmul> cache;
  uint64_t layout = 1469598103934665603ull;  // FNV-1a over the descriptor's bytes: the weights' layout is in the key
  const auto* bytes = reinterpret_cast<const unsigned char*>(&wmd);
  for (size_t i = 0; i < sizeof wmd; i++) layout = (layout ^ bytes[i]) * 1099511628211ull;
  const auto key = std::make_tuple(M, K, N, layout);
  std::lock_guard<std::mutex> guard(lock);
  const auto hit = cache.find(key);
  if (hit != cache.end()) return hit->second;
  Matmul mm;
  const OneThread one;
  const dnnl_memory_desc_t a = plainDesc(M, K), c = plainDesc(M, N);
  dnnl_matmul_desc_t desc;
  dnnl_primitive_attr_t attr = nullptr;
  dnnl_primitive_desc_t pd = nullptr;
  if (dnnl_primitive_attr_create(&attr) == dnnl_success &&
      dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user) == dnnl_success &&
      dnnl_matmul_desc_init(&desc, &a, &wmd, nullptr, &c) == dnnl_success &&
      dnnl_primitive_desc_create(&pd, &desc, attr, cpuEngine(), nullptr) == dnnl_success) {
    const dnnl_memory_desc_t* smd = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    if (smd != nullptr && dnnl_primitive_create(&mm.prim, pd) == dnnl_success) {
      mm.scratch = *smd;
      mm.scratchBytes = dnnl_memory_desc_get_size(smd);
    } else {
      mm.prim = nullptr;
    }
  }
  if (pd != nullptr) dnnl_primitive_desc_destroy(pd);
  if (attr != nullptr) dnnl_primitive_attr_destroy(attr);
  return cache.emplace(key, mm).first->second;
}

void finalizePacked(napi_env, void* data, void*) { delete static_cast<PackedWeights*>(data); }

}  // namespace
#endif

// One product C (M, N) = A (M, K) · B, B packed; false where it could not run (the caller then uses the row-major B).
bool gemmPacked(int M, const float* a, const PackedWeights* packed, float* c) {
#ifdef VMOE_HAVE_DNNL
  if (packed == nullptr || !useDnnl || M < 1) return false;
  const dnnl_memory_desc_t& wmd = *reinterpret_cast<const dnnl_memory_desc_t*>(packed->desc.data());
  const Matmul& mm = matmulFor(M, packed->K, packed->N, wmd);
  dnnl_stream_t stream = threadStream();
  if (mm.prim == nullptr || stream == nullptr) return false;
  static thread_local std::vector<unsigned char> scratch;
  if (scratch.size() < mm.scratchBytes + 64) scratch.resize(mm.scratchBytes + 64);
  void* scratchData = scratch.data() + (64 - reinterpret_cast<uintptr_t>(scratch.data()) % 64) % 64;
  const dnnl_memory_desc_t amd = plainDesc(M, packed->K), cmd = plainDesc(M, packed->N);
  dnnl_memory_t am = nullptr, wm = nullptr, cm = nullptr, sm = nullptr;
  bool ok = dnnl_memory_create(&am, &amd, cpuEngine(), const_cast<float*>(a)) == dnnl_success &&
            dnnl_memory_create(&wm, &wmd, cpuEngine(), packed->data) == dnnl_success &&
            dnnl_memory_create(&cm, &cmd, cpuEngine(), c) == dnnl_success &&
            dnnl_memory_create(&sm, &mm.scratch, cpuEngine(), scratchData) == dnnl_success;
  if (ok) {
    const dnnl_exec_arg_t args[4] = {
        {DNNL_ARG_SRC, am}, {DNNL_ARG_WEIGHTS, wm}, {DNNL_ARG_DST, cm}, {DNNL_ARG_SCRATCHPAD, sm}};
    ok = dnnl_primitive_execute(mm.prim, stream, 4, args) == dnnl_success && dnnl_stream_wait(stream) == dnnl_success;
  }
  for (dnnl_memory_t m : {am, wm, cm, sm}) {
    if (m != nullptr) dnnl_memory_destroy(m);
  }
  return ok;
#else
  (void)M;
  (void)a;
  (void)packed;
  (void)c;
  return false;
#endif
}

// packWeights(heap, wOff, K, N, rowsHint) → an external owning w (K, N) in the layout oneDNN's matmul picks for
// products of rowsHint rows, or null without oneDNN (or where it picks none).
napi_value PackWeights(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  float* heap;
  size_t length;
  int64_t v[4];
  if (!heapKernelArgs(env, info, 5, argv, "vmoe_blas.packWeights expects 5 arguments", &heap, &length, 4, v))
    return nullptr;
  const int64_t wOff = v[0], K = v[1], N = v[2], rows = v[3];
  if (K < 1 || N < 1 || rows < 1 || K > INT32_MAX || N > INT32_MAX || rows > INT32_MAX) {
    napi_throw_range_error(env, nullptr, "vmoe_blas.packWeights: bad dimensions");
    return nullptr;
  }
  if (!inRange(env, wOff, K * N, length, "vmoe_blas.packWeights: w outside the heap")) return nullptr;
  napi_value result;
  NAPI_OK(napi_get_null(env, &result));
#ifdef VMOE_HAVE_DNNL
  if (!useDnnl || cpuEngine() == nullptr || threadStream() == nullptr) return result;
  const dnnl_memory_desc_t a = plainDesc(rows, K), c = plainDesc(rows, N), plain = plainDesc(K, N);
  dnnl_memory_desc_t any;
  const dnnl_dims_t dims = {K, N};
  dnnl_memory_desc_init_by_tag(&any, 2, dims, dnnl_f32, dnnl_format_tag_any);
  dnnl_matmul_desc_t desc;
  dnnl_primitive_desc_t pd = nullptr, rpd = nullptr;
  dnnl_primitive_t reorder = nullptr;
  dnnl_memory_t from = nullptr, to = nullptr;
  auto* packed = new PackedWeights();
  packed->K = K;
  packed->N = N;
  const OneThread one;  // the layout for the one-thread primitives gemmPacked makes
  bool ok = dnnl_matmul_desc_init(&desc, &a, &any, nullptr, &c) == dnnl_success &&
            dnnl_primitive_desc_create(&pd, &desc, nullptr, cpuEngine(), nullptr) == dnnl_success;
  if (ok) {
    const dnnl_memory_desc_t* wmd = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    ok = wmd != nullptr;
    if (ok) {
      packed->desc.assign(reinterpret_cast<const unsigned char*>(wmd), reinterpret_cast<const unsigned char*>(wmd) + sizeof *wmd);
      packed->allocate(dnnl_memory_desc_get_size(wmd));
      ok = packed->data != nullptr &&
           dnnl_reorder_primitive_desc_create(&rpd, &plain, cpuEngine(), wmd, cpuEngine(), nullptr) == dnnl_success &&
           dnnl_primitive_create(&reorder, rpd) == dnnl_success &&
           dnnl_memory_create(&from, &plain, cpuEngine(), heap + wOff) == dnnl_success &&
           dnnl_memory_create(&to, wmd, cpuEngine(), packed->data) == dnnl_success;
      if (ok) {
        const dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}};
        ok = dnnl_primitive_execute(reorder, threadStream(), 2, args) == dnnl_success &&
             dnnl_stream_wait(threadStream()) == dnnl_success;
      }
    }
  }
  if (from != nullptr) dnnl_memory_destroy(from);
  if (to != nullptr) dnnl_memory_destroy(to);
  if (reorder != nullptr) dnnl_primitive_destroy(reorder);
  if (rpd != nullptr) dnnl_primitive_desc_destroy(rpd);
  if (pd != nullptr) dnnl_primitive_desc_destroy(pd);
  if (!ok) {
    delete packed;
    return result;
  }
  NAPI_OK(napi_create_external(env, packed, finalizePacked, nullptr, &result));
#endif
  return result;
}

// The PackedWeights behind a packWeights external, or null for null / undefined; throws for anything else.
bool packedArg(napi_env env, napi_value value, const PackedWeights** out, int64_t K, int64_t N) {
  napi_valuetype type;
  if (napi_typeof(env, value, &type) != napi_ok) {
    napi_throw_error(env, nullptr, "vmoe_blas: N-API call failed: napi_typeof");
    return false;
  }
  if (type == napi_null || type == napi_undefined) {
    *out = nullptr;
    return true;
  }
  void* data = nullptr;
  if (type != napi_external || napi_get_value_external(env, value, &data) != napi_ok || data == nullptr) {
    napi_throw_type_error(env, nullptr, "vmoe_blas: a packed weight must be what packWeights returned, or null");
    return false;
  }
  const auto* p = static_cast<const PackedWeights*>(data);
  if (p->K != K || p->N != N) {
    napi_throw_range_error(env, nullptr, "vmoe_blas: a packed weight's shape does not match the product");
    return false;
  }
  *out = p;
  return true;
}

// A list of `count` packed weights (K, N): null / undefined for none, else an array of packWeights handles or nulls.
bool packedListArg(napi_env env, napi_value value, int64_t count, int64_t K, int64_t N,
                   std::vector<const PackedWeights*>& out) {
  napi_valuetype type;
  bool isArray = false;
  if (napi_typeof(env, value, &type) != napi_ok || napi_is_array(env, value, &isArray) != napi_ok) {
    napi_throw_error(env, nullptr, "vmoe_blas: N-API call failed: napi_typeof");
    return false;
  }
  if (type == napi_null || type == napi_undefined) return true;
  uint32_t n = 0;
  if (!isArray || napi_get_array_length(env, value, &n) != napi_ok || n != count) {
    napi_throw_type_error(env, nullptr, "vmoe_blas: packed expert weights must be an array of one handle per expert");
    return false;
  }
  for (uint32_t i = 0; i < n; i++) {
    napi_value item;
    if (napi_get_element(env, value, i, &item) != napi_ok) {
      napi_throw_error(env, nullptr, "vmoe_blas: N-API call failed: napi_get_element");
      return false;
    }
    if (!packedArg(env, item, &out[i], K, N)) return false;
  }
  return true;
}

}  // namespace vmoe
