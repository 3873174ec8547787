// Pre-packed weights against oneDNN's packing on every call (issue #22, docs/performance.md §5): one
// single-threaded product at the shapes the native kernels run (tiles of 200 / 400 rows of the tiny and S/32
// models, and a whole tiny batch), three ways: dnnl_sgemm as the addon calls it (B packed inside each call), a
// matmul primitive whose weights were reordered once into the layout it picks (format any), and the same primitive
// on plain row-major weights. Prints the median of 400 calls after 50 warm-up calls, and the largest difference
// between dnnl_sgemm's and the packed primitive's C.
//
//   g++ -O2 -fopenmp bench/native/packed-weights.cc -o /tmp/packed-weights -ldnnl && /tmp/packed-weights
#include <oneapi/dnnl/dnnl.h>
#include <oneapi/dnnl/dnnl.hpp>
#include <cmath>
#include <cstring>
#include <omp.h>
#include <chrono>
#include <cstdio>
#include <vector>
#include <algorithm>
#include <random>
using namespace dnnl;
static double now() { return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count(); }
template <class F> double med(F f, int reps) {
  for (int i = 0; i < 50; i++) f();
  std::vector<double> t;
  for (int i = 0; i < reps; i++) { double t0 = now(); f(); t.push_back(now() - t0); }
  std::sort(t.begin(), t.end()); return t[t.size() / 2];
}
int main() {
  omp_set_num_threads(1);
  engine eng(engine::kind::cpu, 0); stream s(eng);
  int shapes[][3] = {{200, 64, 192}, {200, 64, 64}, {200, 64, 256}, {200, 256, 64}, {400, 512, 1536}, {400, 512, 2048}, {400, 2048, 512}, {3200, 64, 192}};
  std::mt19937 rng(1); std::normal_distribution<float> nd;
  for (auto& sh : shapes) {
    int M = sh[0], K = sh[1], N = sh[2];
    std::vector<float> A(M * K), B(K * N), C(M * N), C2(M * N);
    for (auto& v : A) v = nd(rng); for (auto& v : B) v = nd(rng);
    double tg = med([&] { dnnl_sgemm('N', 'N', M, N, K, 1.f, A.data(), K, B.data(), N, 0.f, C.data(), N); }, 400);
    memory::desc amd({M, K}, memory::data_type::f32, memory::format_tag::ab);
    memory::desc bany({K, N}, memory::data_type::f32, memory::format_tag::any);
    memory::desc bab({K, N}, memory::data_type::f32, memory::format_tag::ab);
    memory::desc cmd({M, N}, memory::data_type::f32, memory::format_tag::ab);
    auto pd = matmul::primitive_desc(matmul::desc(amd, bany, cmd), eng);
    auto pdab = matmul::primitive_desc(matmul::desc(amd, bab, cmd), eng);
    memory am(amd, eng, A.data()), bm(bab, eng, B.data()), cm(cmd, eng, C2.data());
    memory bp(pd.weights_desc(), eng);
    reorder(bm, bp).execute(s, bm, bp); s.wait();
    matmul mm(pd), mmab(pdab);
    double tp = med([&] { mm.execute(s, {{DNNL_ARG_SRC, am}, {DNNL_ARG_WEIGHTS, bp}, {DNNL_ARG_DST, cm}}); s.wait(); }, 400);
    double tab = med([&] { mmab.execute(s, {{DNNL_ARG_SRC, am}, {DNNL_ARG_WEIGHTS, bm}, {DNNL_ARG_DST, cm}}); s.wait(); }, 400);
    float md = 0; for (int i = 0; i < M * N; i++) md = std::max(md, std::abs(C[i] - C2[i]));
    double gf = 2.0 * M * N * K / 1e6;
    printf("%5d %5d %5d  sgemm %.4f ms %.0f GF/s | matmul packed %.4f ms %.0f GF/s (%s) | matmul ab %.4f ms %.0f | maxdiff %g\n", M, K, N, tg, gf / tg, tp, gf / tp, pd.impl_info_str(), tab, gf / tab, md);
  }
}
