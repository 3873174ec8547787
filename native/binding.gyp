{
  "targets": [
    {
      "target_name": "vmoe_blas",
      "sources": [
        "src/module.cc",
        "src/gemm.cc",
        "src/strided.cc",
        "src/elementwise.cc",
        "src/attention.cc",
        "src/block.cc",
        "src/optimizer.cc",
        "src/experts.cc",
        "src/packed.cc",
        "src/router.cc",
        "src/rng.cc"
      ],
      "cflags_cc": ["-O3", "-std=c++17", "-fno-trapping-math"],
      "cflags_cc!": ["-fno-exceptions"],
      "libraries": ["-lopenblas"]
    }
  ]
}
