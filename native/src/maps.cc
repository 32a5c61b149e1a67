#include "maps.h"

#include <bpf/bpf.h>

#include <cerrno>
#include <vector>

#include "errors.h"

namespace cm {

namespace {
int Fd(const Napi::CallbackInfo &info) { return info[0].As<Napi::Number>().Int32Value(); }

Napi::Buffer<uint8_t> Bytes(const Napi::Value &value) { return value.As<Napi::Buffer<uint8_t>>(); }

uint32_t U32(const Napi::Value &value) { return value.As<Napi::Number>().Uint32Value(); }

void Check(Napi::Env env, int result, const char *what) {
  if (result != 0) ThrowErrno(env, errno, BpfFailure(errno, what));
}

// The kernel's batch calls stop at the first failing element; report how far they got.
void CheckBatch(Napi::Env env, int result, const char *what, uint32_t done, uint32_t wanted) {
  if (result != 0)
    ThrowErrno(env, errno,
               BpfFailure(errno, std::string(what) + " stopped after " + std::to_string(done) + " of " +
                                     std::to_string(wanted) + " entries"));
}
}  // namespace

Napi::Value MapLookup(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  auto key = Bytes(info[1]);
  auto value = Napi::Buffer<uint8_t>::New(env, U32(info[2]));
  if (bpf_map_lookup_elem(Fd(info), key.Data(), value.Data()) != 0) {
    if (errno == ENOENT) return env.Null();
    Check(env, -1, "map lookup failed");
  }
  return value;
}

Napi::Value MapUpdate(const Napi::CallbackInfo &info) {
  uint64_t flags = info.Length() > 3 ? info[3].As<Napi::Number>().Int64Value() : static_cast<uint64_t>(BPF_ANY);
  Check(info.Env(), bpf_map_update_elem(Fd(info), Bytes(info[1]).Data(), Bytes(info[2]).Data(), flags),
        "map update failed");
  return info.Env().Undefined();
}

Napi::Value MapDelete(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (bpf_map_delete_elem(Fd(info), Bytes(info[1]).Data()) == 0) return Napi::Boolean::New(env, true);
  if (errno == ENOENT) return Napi::Boolean::New(env, false);
  Check(env, -1, "map delete failed");
  return env.Undefined();
}

Napi::Value MapNextKey(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  const void *current = info[1].IsNull() ? nullptr : Bytes(info[1]).Data();
  auto next = Napi::Buffer<uint8_t>::New(env, U32(info[2]));
  if (bpf_map_get_next_key(Fd(info), current, next.Data()) != 0) {
    if (errno == ENOENT) return env.Null();
    Check(env, -1, "map iteration failed");
  }
  return next;
}

// Walks the whole map in one call (get_next_key + lookup); entries deleted meanwhile are skipped.
Napi::Value MapDump(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  int fd = Fd(info);
  uint32_t key_size = U32(info[1]), value_size = U32(info[2]);
  std::vector<uint8_t> keys, values, key(key_size), value(value_size);
  uint32_t count = 0;
  const void *previous = nullptr;
  std::vector<uint8_t> previous_key(key_size);
  while (bpf_map_get_next_key(fd, previous, key.data()) == 0) {
    if (bpf_map_lookup_elem(fd, key.data(), value.data()) == 0) {
      keys.insert(keys.end(), key.begin(), key.end());
      values.insert(values.end(), value.begin(), value.end());
      count++;
    }
    previous_key = key;
    previous = previous_key.data();
  }
  if (errno != ENOENT) Check(env, -1, "map iteration failed");
  Napi::Object result = Napi::Object::New(env);
  result.Set("keys", Napi::Buffer<uint8_t>::Copy(env, keys.data(), keys.size()));
  result.Set("values", Napi::Buffer<uint8_t>::Copy(env, values.data(), values.size()));
  result.Set("count", count);
  return result;
}

Napi::Value MapUpdateBatch(const Napi::CallbackInfo &info) {
  uint32_t wanted = U32(info[3]), count = wanted;
  if (wanted == 0) return info.Env().Undefined();
  LIBBPF_OPTS(bpf_map_batch_opts, opts, .elem_flags = BPF_ANY, .flags = 0);
  int result = bpf_map_update_batch(Fd(info), Bytes(info[1]).Data(), Bytes(info[2]).Data(), &count, &opts);
  CheckBatch(info.Env(), result, "batch map update", count, wanted);
  return info.Env().Undefined();
}

Napi::Value MapDeleteBatch(const Napi::CallbackInfo &info) {
  uint32_t wanted = U32(info[2]), count = wanted;
  if (wanted == 0) return info.Env().Undefined();
  LIBBPF_OPTS(bpf_map_batch_opts, opts, .elem_flags = 0, .flags = 0);
  int result = bpf_map_delete_batch(Fd(info), Bytes(info[1]).Data(), &count, &opts);
  CheckBatch(info.Env(), result, "batch map delete", count, wanted);
  return info.Env().Undefined();
}

}  // namespace cm
