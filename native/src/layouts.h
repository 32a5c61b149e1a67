#pragma once
#include <napi.h>

namespace cm {
// layouts() -> { struct_name: { size, fields: { field: { offset, size } } } } for every struct of
// bpf/clustermesh.h, as this compiler lays it out (the BPF target agrees: same ABI rules).
Napi::Value Layouts(const Napi::CallbackInfo &info);
// constants() -> the header's named numbers (states, flags, protocols, capacities).
Napi::Value Constants(const Napi::CallbackInfo &info);
}  // namespace cm
