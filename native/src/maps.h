#pragma once
#include <napi.h>

namespace cm {
// Map operations on the fd of a map of an open object; keys and values are Buffers laid out as
// bpf/clustermesh.h says. Every buffer, size and count is checked against that map's key and
// value sizes before the syscall (EINVAL naming the map and the sizes otherwise). A value of a
// per-CPU map is one value per possible CPU, each rounded up to 8 bytes.
Napi::Value MapLookup(const Napi::CallbackInfo &info);       // (fd, key, valueSize) -> Buffer | null
Napi::Value MapUpdate(const Napi::CallbackInfo &info);       // (fd, key, value, flags?)
Napi::Value MapDelete(const Napi::CallbackInfo &info);       // (fd, key) -> deleted?
Napi::Value MapNextKey(const Napi::CallbackInfo &info);      // (fd, key | null, keySize) -> Buffer | null
Napi::Value MapDump(const Napi::CallbackInfo &info);         // (fd, keySize, valueSize) -> {keys, values, count}
Napi::Value MapUpdateBatch(const Napi::CallbackInfo &info);  // (fd, keys, values, count)
Napi::Value MapDeleteBatch(const Napi::CallbackInfo &info);  // (fd, keys, count)
// (fd) -> ArrayBuffer over a BPF_F_MMAPABLE array's memory (element i at i * round_up(valueSize, 8)):
// stores land in the map at once, without a syscall. Unmapped when collected; closeObject detaches
// the views of its maps (they read as empty from then on).
Napi::Value MapMmap(const Napi::CallbackInfo &info);
void DetachMappedViews(int fd);
}  // namespace cm
