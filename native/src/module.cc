// The addon's N-API module: registers every entry point of the units under its JavaScript name
// (the BlasAddon interface of src/engine/native/addon.ts).

#include "common.h"

namespace vmoe {
namespace {

napi_value Init(napi_env env, napi_value exports) {
  const napi_property_descriptor props[] = {
      {"sgemm", nullptr, Sgemm, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"sgemmOffsets", nullptr, SgemmOffsets, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"copyStrided", nullptr, CopyStrided, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"tanh", nullptr, Tanh, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"addTiled", nullptr, AddTiled, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"gelu", nullptr, Gelu, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"geluGrad", nullptr, GeluGrad, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"layerNorm", nullptr, LayerNorm, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"layerNormGrad", nullptr, LayerNormGrad, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"softmax", nullptr, Softmax, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"softmaxGrad", nullptr, SoftmaxGrad, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"attention", nullptr, Attention, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"attentionGrad", nullptr, AttentionGrad, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"encoderBlock", nullptr, EncoderBlock, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"patchEmbed", nullptr, PatchEmbed, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"reduceMiddle", nullptr, ReduceMiddle, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"adam", nullptr, Adam, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"sumOfSquares", nullptr, SumOfSquares, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"combineRows", nullptr, CombineRows, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"combineRowsGrad", nullptr, CombineRowsGrad, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"setThreads", nullptr, SetThreads, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"expertDense", nullptr, ExpertDense, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"expertDenseGrad", nullptr, ExpertDenseGrad, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"expertMlp", nullptr, ExpertMlp, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"packWeights", nullptr, PackWeights, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"routerAux", nullptr, RouterAux, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"normals", nullptr, Normals, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"planTopK", nullptr, PlanTopK, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"routerGates", nullptr, RouterGates, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"routerGatesGrad", nullptr, RouterGatesGrad, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"setGemm", nullptr, SetGemm, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"info", nullptr, Info, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  NAPI_OK(napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props));
  return exports;
}

}  // namespace
}  // namespace vmoe

NAPI_MODULE(NODE_GYP_MODULE_NAME, vmoe::Init)
