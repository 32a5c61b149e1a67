// clustermesh_native: the socket-LB datapath's door into the kernel (system libbpf).
#include <napi.h>

#include "cgroup_attach.h"
#include "layouts.h"
#include "maps.h"
#include "object.h"

namespace {
Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("openObject", Napi::Function::New(env, cm::OpenObject));
  exports.Set("closeObject", Napi::Function::New(env, cm::CloseObject));
  exports.Set("possibleCpus", Napi::Function::New(env, cm::PossibleCpus));
  exports.Set("mapLookup", Napi::Function::New(env, cm::MapLookup));
  exports.Set("mapUpdate", Napi::Function::New(env, cm::MapUpdate));
  exports.Set("mapDelete", Napi::Function::New(env, cm::MapDelete));
  exports.Set("mapNextKey", Napi::Function::New(env, cm::MapNextKey));
  exports.Set("mapDump", Napi::Function::New(env, cm::MapDump));
  exports.Set("mapUpdateBatch", Napi::Function::New(env, cm::MapUpdateBatch));
  exports.Set("mapDeleteBatch", Napi::Function::New(env, cm::MapDeleteBatch));
  exports.Set("mapMmap", Napi::Function::New(env, cm::MapMmap));
  exports.Set("progQuery", Napi::Function::New(env, cm::ProgQuery));
  exports.Set("progAttach", Napi::Function::New(env, cm::ProgAttach));
  exports.Set("progDetach", Napi::Function::New(env, cm::ProgDetach));
  exports.Set("layouts", Napi::Function::New(env, cm::Layouts));
  exports.Set("constants", Napi::Function::New(env, cm::Constants));
  return exports;
}
}  // namespace

NODE_API_MODULE(clustermesh_native, Init)
