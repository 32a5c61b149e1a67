#include "maps.h"

#include <bpf/bpf.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "errors.h"
#include "object.h"

namespace cm {

namespace {
// The map behind argument 0, checked to be one of an open object.
const OpenMap &MapArg(const Napi::CallbackInfo &info, const char *op) {
  if (info.Length() < 1 || !info[0].IsNumber())
    ThrowErrno(info.Env(), EINVAL, std::string(op) + ": the first argument must be a map fd from openObject");
  int fd = info[0].As<Napi::Number>().Int32Value();
  const OpenMap *map = FindOpenMap(fd);
  if (!map)
    ThrowErrno(info.Env(), EBADF, std::string(op) + ": fd " + std::to_string(fd) + " is not a map of an open object");
  return *map;
}

int Fd(const Napi::CallbackInfo &info) { return info[0].As<Napi::Number>().Int32Value(); }

std::string Bytes(uint64_t n) { return std::to_string(n) + (n == 1 ? " byte" : " bytes"); }

Napi::Buffer<uint8_t> BufferArg(const Napi::CallbackInfo &info, size_t i, const char *op, const char *what) {
  if (i >= info.Length() || !info[i].IsBuffer())
    ThrowErrno(info.Env(), EINVAL, std::string(op) + ": " + what + " must be a Buffer");
  return info[i].As<Napi::Buffer<uint8_t>>();
}

// A buffer holding exactly one key or value of the map.
Napi::Buffer<uint8_t> ExactArg(const Napi::CallbackInfo &info, size_t i, const OpenMap &map, const char *op,
                               const char *what, uint32_t want) {
  auto buffer = BufferArg(info, i, op, what);
  if (buffer.Length() != want)
    ThrowErrno(info.Env(), EINVAL,
               std::string(op) + ": " + what + " of " + Bytes(buffer.Length()) + " for map " + map.name + ", whose " +
                   what + "s are " + Bytes(want));
  return buffer;
}

uint32_t CountArg(const Napi::CallbackInfo &info, size_t i, const char *op, const char *what) {
  double value = i < info.Length() && info[i].IsNumber() ? info[i].As<Napi::Number>().DoubleValue() : -1;
  if (!(value >= 0 && value <= UINT32_MAX && value == static_cast<double>(static_cast<uint32_t>(value))))
    ThrowErrno(info.Env(), EINVAL, std::string(op) + ": " + what + " must be an integer in 0..2^32-1");
  return static_cast<uint32_t>(value);
}

// A size the caller states must be the map's own.
void RequireSize(const Napi::CallbackInfo &info, size_t i, const OpenMap &map, const char *op, const char *what,
                 uint32_t want) {
  uint32_t stated = CountArg(info, i, op, what);
  if (stated != want)
    ThrowErrno(info.Env(), EINVAL,
               std::string(op) + ": " + what + " " + std::to_string(stated) + " for map " + map.name + ", whose " +
                   what + " is " + std::to_string(want));
}

// `count` packed entries of `size` bytes must fit in the buffer.
void RequireRoom(const Napi::CallbackInfo &info, const Napi::Buffer<uint8_t> &buffer, const OpenMap &map,
                 const char *op, const char *what, uint32_t count, uint32_t size) {
  uint64_t needed = static_cast<uint64_t>(count) * size;
  if (needed > buffer.Length())
    ThrowErrno(info.Env(), EINVAL,
               std::string(op) + ": " + std::to_string(count) + " entries of map " + map.name + " need " +
                   Bytes(needed) + " of " + what + ", the buffer has " + Bytes(buffer.Length()));
}

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
  const OpenMap &map = MapArg(info, "mapLookup");
  auto key = ExactArg(info, 1, map, "mapLookup", "key", map.key_size);
  RequireSize(info, 2, map, "mapLookup", "value size", map.value_bytes);
  auto value = Napi::Buffer<uint8_t>::New(env, map.value_bytes);
  if (bpf_map_lookup_elem(Fd(info), key.Data(), value.Data()) != 0) {
    if (errno == ENOENT) return env.Null();
    Check(env, -1, "map lookup failed");
  }
  return value;
}

Napi::Value MapUpdate(const Napi::CallbackInfo &info) {
  const OpenMap &map = MapArg(info, "mapUpdate");
  auto key = ExactArg(info, 1, map, "mapUpdate", "key", map.key_size);
  auto value = ExactArg(info, 2, map, "mapUpdate", "value", map.value_bytes);
  uint64_t flags = info.Length() > 3 ? CountArg(info, 3, "mapUpdate", "flags") : static_cast<uint64_t>(BPF_ANY);
  Check(info.Env(), bpf_map_update_elem(Fd(info), key.Data(), value.Data(), flags), "map update failed");
  return info.Env().Undefined();
}

Napi::Value MapDelete(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  const OpenMap &map = MapArg(info, "mapDelete");
  auto key = ExactArg(info, 1, map, "mapDelete", "key", map.key_size);
  if (bpf_map_delete_elem(Fd(info), key.Data()) == 0) return Napi::Boolean::New(env, true);
  if (errno == ENOENT) return Napi::Boolean::New(env, false);
  Check(env, -1, "map delete failed");
  return env.Undefined();
}

Napi::Value MapNextKey(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  const OpenMap &map = MapArg(info, "mapNextKey");
  const void *current = nullptr;
  if (info.Length() < 2 || !info[1].IsNull()) current = ExactArg(info, 1, map, "mapNextKey", "key", map.key_size).Data();
  RequireSize(info, 2, map, "mapNextKey", "key size", map.key_size);
  auto next = Napi::Buffer<uint8_t>::New(env, map.key_size);
  if (bpf_map_get_next_key(Fd(info), current, next.Data()) != 0) {
    if (errno == ENOENT) return env.Null();
    Check(env, -1, "map iteration failed");
  }
  return next;
}

// Walks the whole map in one call (get_next_key + lookup); entries deleted meanwhile are skipped.
namespace {
// Reads the whole map with BPF_MAP_LOOKUP_BATCH, a syscall per 4096 entries instead of two per
// entry: the datapath's backend and rev NAT maps are arrays (bpf/sock_lb.c) of 262144 and 65536
// entries, read at every agent start. False when the map kind has no batch lookup (LPM tries).
bool DumpBatched(Napi::Env env, int fd, uint32_t key_size, uint32_t value_size, std::vector<uint8_t> &keys,
                 std::vector<uint8_t> &values, uint32_t &count) {
  const uint32_t chunk = 4096;
  // the resume token: a key for arrays, a bucket index for hashes
  std::vector<uint8_t> token(key_size < 8 ? 8 : key_size), next(token.size());
  void *in = nullptr;
  LIBBPF_OPTS(bpf_map_batch_opts, opts, .elem_flags = 0, .flags = 0);
  for (;;) {
    uint32_t n = chunk;
    keys.resize(static_cast<size_t>(count + chunk) * key_size);
    values.resize(static_cast<size_t>(count + chunk) * value_size);
    int result = bpf_map_lookup_batch(fd, in, next.data(), keys.data() + static_cast<size_t>(count) * key_size,
                                      values.data() + static_cast<size_t>(count) * value_size, &n, &opts);
    int err = errno;
    if (result != 0 && err != ENOENT) {
      if (in == nullptr && count == 0 && (err == EINVAL || err == EOPNOTSUPP || err == 524 /* ENOTSUPP */)) {
        keys.clear();
        values.clear();
        return false;
      }
      ThrowErrno(env, err, BpfFailure(err, "batch map lookup"));
    }
    count += n;
    if (result != 0) break;  // ENOENT: the last entries came with this call
    token.swap(next);
    in = token.data();
  }
  keys.resize(static_cast<size_t>(count) * key_size);
  values.resize(static_cast<size_t>(count) * value_size);
  return true;
}
}  // namespace

Napi::Value MapDump(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  const OpenMap &map = MapArg(info, "mapDump");
  RequireSize(info, 1, map, "mapDump", "key size", map.key_size);
  RequireSize(info, 2, map, "mapDump", "value size", map.value_bytes);
  int fd = Fd(info);
  uint32_t key_size = map.key_size, value_size = map.value_bytes;
  std::vector<uint8_t> keys, values, key(key_size), value(value_size);
  uint32_t count = 0;
  if (!DumpBatched(env, fd, key_size, value_size, keys, values, count)) {
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
  }
  Napi::Object result = Napi::Object::New(env);
  result.Set("keys", Napi::Buffer<uint8_t>::Copy(env, keys.data(), keys.size()));
  result.Set("values", Napi::Buffer<uint8_t>::Copy(env, values.data(), values.size()));
  result.Set("count", count);
  return result;
}

Napi::Value MapUpdateBatch(const Napi::CallbackInfo &info) {
  const OpenMap &map = MapArg(info, "mapUpdateBatch");
  auto keys = BufferArg(info, 1, "mapUpdateBatch", "keys");
  auto values = BufferArg(info, 2, "mapUpdateBatch", "values");
  uint32_t wanted = CountArg(info, 3, "mapUpdateBatch", "count"), count = wanted;
  RequireRoom(info, keys, map, "mapUpdateBatch", "keys", wanted, map.key_size);
  RequireRoom(info, values, map, "mapUpdateBatch", "values", wanted, map.value_bytes);
  if (wanted == 0) return info.Env().Undefined();
  LIBBPF_OPTS(bpf_map_batch_opts, opts, .elem_flags = BPF_ANY, .flags = 0);
  int result = bpf_map_update_batch(Fd(info), keys.Data(), values.Data(), &count, &opts);
  CheckBatch(info.Env(), result, "batch map update", count, wanted);
  return info.Env().Undefined();
}

Napi::Value MapDeleteBatch(const Napi::CallbackInfo &info) {
  const OpenMap &map = MapArg(info, "mapDeleteBatch");
  auto keys = BufferArg(info, 1, "mapDeleteBatch", "keys");
  uint32_t wanted = CountArg(info, 2, "mapDeleteBatch", "count"), count = wanted;
  RequireRoom(info, keys, map, "mapDeleteBatch", "keys", wanted, map.key_size);
  if (wanted == 0) return info.Env().Undefined();
  LIBBPF_OPTS(bpf_map_batch_opts, opts, .elem_flags = 0, .flags = 0);
  int result = bpf_map_delete_batch(Fd(info), keys.Data(), &count, &opts);
  CheckBatch(info.Env(), result, "batch map delete", count, wanted);
  return info.Env().Undefined();
}

namespace {
// The views mapMmap handed out, by map fd: closeObject detaches them.
std::map<int, std::vector<Napi::Reference<Napi::ArrayBuffer>>> mapped_views;
}  // namespace

Napi::Value MapMmap(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  const OpenMap &map = MapArg(info, "mapMmap");
  int fd = Fd(info);
  bpf_map_info map_info{};
  uint32_t info_len = sizeof(map_info);
  Check(env, bpf_obj_get_info_by_fd(fd, &map_info, &info_len), "reading the map's info failed");
  if (map_info.type != BPF_MAP_TYPE_ARRAY || !(map_info.map_flags & BPF_F_MMAPABLE))
    ThrowErrno(env, EINVAL, "mapMmap: map " + map.name + " is not a BPF_F_MMAPABLE array");
  // the kernel lays array elements out every round_up(value_size, 8) bytes
  size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  size_t bytes = static_cast<size_t>(map_info.max_entries) * ((map_info.value_size + 7) / 8 * 8);
  size_t length = (bytes + page - 1) / page * page;
  void *addr = mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (addr == MAP_FAILED) Check(env, -1, "mapping the map's memory failed");
  auto view = Napi::ArrayBuffer::New(
      env, addr, bytes,
      [](Napi::Env, void *data, size_t *mapped) {
        munmap(data, *mapped);
        delete mapped;
      },
      new size_t(length));
  mapped_views[fd].push_back(Napi::Weak(view));
  return view;
}

void DetachMappedViews(int fd) {
  auto it = mapped_views.find(fd);
  if (it == mapped_views.end()) return;
  for (auto &ref : it->second) {
    Napi::ArrayBuffer view = ref.Value();
    if (!view.IsEmpty() && !view.IsDetached()) view.Detach();
  }
  mapped_views.erase(it);
}

}  // namespace cm
