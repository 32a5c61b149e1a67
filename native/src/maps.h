#pragma once
#include <napi.h>

namespace cm {
// Map operations on an fd; keys and values are Buffers laid out as bpf/clustermesh.h says.
Napi::Value MapLookup(const Napi::CallbackInfo &info);       // (fd, key, valueSize) -> Buffer | null
Napi::Value MapUpdate(const Napi::CallbackInfo &info);       // (fd, key, value, flags?)
Napi::Value MapDelete(const Napi::CallbackInfo &info);       // (fd, key) -> deleted?
Napi::Value MapNextKey(const Napi::CallbackInfo &info);      // (fd, key | null, keySize) -> Buffer | null
Napi::Value MapDump(const Napi::CallbackInfo &info);         // (fd, keySize, valueSize) -> {keys, values, count}
Napi::Value MapUpdateBatch(const Napi::CallbackInfo &info);  // (fd, keys, values, count)
Napi::Value MapDeleteBatch(const Napi::CallbackInfo &info);  // (fd, keys, count)
}  // namespace cm
