#pragma once
#include <napi.h>

#include <cstdint>
#include <string>

namespace cm {
// openObject(objectPath, pinDir) -> { id, maps: {name: {fd, type, keySize, valueSize, maxEntries}},
//                                     programs: [{name, fd, id, attachType}] }
// On any failure nothing stays open: every fd of the half-loaded object is closed, and libbpf
// unpins the maps this attempt created. A rejected program's whole verifier log is in the error.
Napi::Value OpenObject(const Napi::CallbackInfo &info);
// closeObject(id): releases the fds; pinned maps and cgroup attachments stay.
Napi::Value CloseObject(const Napi::CallbackInfo &info);

// possibleCpus(): how many values a per-CPU map holds per key (libbpf_num_possible_cpus).
Napi::Value PossibleCpus(const Napi::CallbackInfo &info);

// A map of an open object, as the map operations (native/src/maps.cc) check their buffers against.
struct OpenMap {
  std::string name;
  uint32_t type;
  uint32_t key_size;
  // bytes of one value as the syscalls read and write it: value_size, or for per-CPU maps
  // value_size rounded up to 8 times the possible CPUs
  uint32_t value_bytes;
};
// nullptr when fd is not a map of an object this addon opened.
const OpenMap *FindOpenMap(int fd);
}  // namespace cm
