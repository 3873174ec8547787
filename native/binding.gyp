{
  "targets": [
    {
      "target_name": "vmoe_blas",
      "sources": ["vmoe_blas.cc"],
      "cflags_cc": ["-O3", "-std=c++17", "-fno-trapping-math"],
      "cflags_cc!": ["-fno-exceptions"],
      "libraries": ["-lopenblas"]
    }
  ]
}
