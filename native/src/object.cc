#include "object.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>

#include <cerrno>
#include <map>
#include <memory>
#include <string>

#include "errors.h"
#include "maps.h"

namespace cm {

namespace {
std::map<int, bpf_object *> open_objects;
std::map<int, OpenMap> open_maps;  // by fd
int next_object_id = 1;

struct ObjectCloser {
  void operator()(bpf_object *obj) const { bpf_object__close(obj); }
};
// Owns a bpf_object (and so every fd libbpf opened for it) until it is registered as open.
using ObjectOwner = std::unique_ptr<bpf_object, ObjectCloser>;

bool IsPerCpu(bpf_map_type type) {
  return type == BPF_MAP_TYPE_PERCPU_HASH || type == BPF_MAP_TYPE_PERCPU_ARRAY ||
         type == BPF_MAP_TYPE_LRU_PERCPU_HASH || type == BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE;
}

OpenMap Describe(bpf_map *map, uint32_t possible_cpus) {
  bpf_map_type type = bpf_map__type(map);
  uint32_t value_size = bpf_map__value_size(map);
  uint32_t value_bytes = IsPerCpu(type) ? ((value_size + 7) / 8) * 8 * possible_cpus : value_size;
  return {bpf_map__name(map), static_cast<uint32_t>(type), bpf_map__key_size(map), value_bytes};
}

// The nearest existing ancestor of path decides which filesystem pins would land on.
std::string NearestExisting(std::string path) {
  struct stat st;
  while (!path.empty() && stat(path.c_str(), &st) != 0) {
    size_t slash = path.find_last_of('/');
    path = slash == 0 ? "/" : path.substr(0, slash);
  }
  return path.empty() ? "/" : path;
}

void RequireBpffs(Napi::Env env, const std::string &pin_dir) {
  struct statfs fs;
  std::string existing = NearestExisting(pin_dir);
  if (statfs(existing.c_str(), &fs) != 0) ThrowErrno(env, errno, "cannot stat " + existing);
  if (fs.f_type != BPF_FS_MAGIC)
    ThrowErrno(env, ENODEV,
               "bpffs not mounted at " + pin_dir + ": run `mount -t bpf bpf /sys/fs/bpf` and pin under it");
}

void MakeDirs(Napi::Env env, const std::string &dir) {
  for (size_t pos = 1; pos != std::string::npos;) {
    pos = dir.find('/', pos + 1);
    std::string prefix = dir.substr(0, pos);
    if (mkdir(prefix.c_str(), 0700) != 0 && errno != EEXIST)
      ThrowErrno(env, errno, "cannot create pin directory " + prefix);
  }
}

Napi::Object DescribeMaps(Napi::Env env, bpf_object *obj) {
  Napi::Object maps = Napi::Object::New(env);
  bpf_map *map;
  bpf_object__for_each_map(map, obj) {
    Napi::Object m = Napi::Object::New(env);
    m.Set("fd", bpf_map__fd(map));
    m.Set("type", static_cast<int>(bpf_map__type(map)));
    m.Set("keySize", bpf_map__key_size(map));
    m.Set("valueSize", bpf_map__value_size(map));
    m.Set("maxEntries", bpf_map__max_entries(map));
    maps.Set(bpf_map__name(map), m);
  }
  return maps;
}

Napi::Array DescribePrograms(Napi::Env env, bpf_object *obj) {
  Napi::Array programs = Napi::Array::New(env);
  bpf_program *prog;
  uint32_t i = 0;
  bpf_object__for_each_program(prog, obj) {
    Napi::Object p = Napi::Object::New(env);
    p.Set("name", bpf_program__name(prog));
    p.Set("fd", bpf_program__fd(prog));
    bpf_prog_info prog_info = {};
    uint32_t len = sizeof(prog_info);
    if (bpf_obj_get_info_by_fd(bpf_program__fd(prog), &prog_info, &len) == 0) p.Set("id", prog_info.id);
    p.Set("attachType", static_cast<int>(bpf_program__expected_attach_type(prog)));
    programs.Set(i++, p);
  }
  return programs;
}

std::string LoadFailure(int err, const std::string &object_path, const std::string &pin_dir) {
  std::string log = TakeLibbpfLog();
  std::string sentence;
  if (log.find("-- BEGIN PROG LOAD LOG --") != std::string::npos)
    sentence = "loading " + object_path + ": the kernel's verifier rejected a program (" + strerror(err) + ")";
  else if (err == EPERM || err == EACCES)
    return BpfFailure(err, "");  // the one common cause: not root
  else
    sentence = BpfFailure(err, "loading " + object_path + " (pins in " + pin_dir + ") failed") +
               "; if a pinned map is incompatible, destroy " + pin_dir + " first";
  return log.empty() ? sentence : sentence + "; libbpf said:\n" + log;
}
}  // namespace

Napi::Value OpenObject(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsString() || !info[1].IsString())
    ThrowErrno(env, EINVAL, "openObject(objectPath, pinDir) takes two strings");
  std::string object_path = info[0].As<Napi::String>();
  std::string pin_dir = info[1].As<Napi::String>();

  RequireBpffs(env, pin_dir);
  MakeDirs(env, pin_dir);
  StartLibbpfLog();

  LIBBPF_OPTS(bpf_object_open_opts, opts, .pin_root_path = pin_dir.c_str());
  ObjectOwner obj(bpf_object__open_file(object_path.c_str(), &opts));
  if (!obj) {
    int err = errno;
    std::string log = TakeLibbpfLog();
    ThrowErrno(env, err,
               "cannot open BPF object " + object_path + ": run `make -C bpf` (" + strerror(err) + ")" +
                   (log.empty() ? "" : "; libbpf said:\n" + log));
  }
  int load_result = bpf_object__load(obj.get());
  if (load_result != 0) ThrowErrno(env, -load_result, LoadFailure(-load_result, object_path, pin_dir));
  TakeLibbpfLog();

  int possible_cpus = libbpf_num_possible_cpus();
  if (possible_cpus <= 0) ThrowErrno(env, -possible_cpus, "cannot read the possible CPUs (/sys/devices/system/cpu/possible)");
  Napi::Object result = Napi::Object::New(env);
  Napi::Object maps = DescribeMaps(env, obj.get());
  Napi::Array programs = DescribePrograms(env, obj.get());
  int id = next_object_id++;
  result.Set("id", id);
  result.Set("maps", maps);
  result.Set("programs", programs);
  bpf_map *map;
  bpf_object__for_each_map(map, obj.get()) open_maps[bpf_map__fd(map)] = Describe(map, possible_cpus);
  open_objects[id] = obj.release();
  return result;
}

Napi::Value CloseObject(const Napi::CallbackInfo &info) {
  if (info.Length() < 1 || !info[0].IsNumber()) ThrowErrno(info.Env(), EINVAL, "closeObject(id) takes the id openObject returned");
  int id = info[0].As<Napi::Number>().Int32Value();
  auto it = open_objects.find(id);
  if (it != open_objects.end()) {
    bpf_map *map;
    bpf_object__for_each_map(map, it->second) {
      DetachMappedViews(bpf_map__fd(map));
      open_maps.erase(bpf_map__fd(map));
    }
    bpf_object__close(it->second);
    open_objects.erase(it);
  }
  return info.Env().Undefined();
}

Napi::Value PossibleCpus(const Napi::CallbackInfo &info) {
  int cpus = libbpf_num_possible_cpus();
  if (cpus <= 0) ThrowErrno(info.Env(), -cpus, "cannot read the possible CPUs (/sys/devices/system/cpu/possible)");
  return Napi::Number::New(info.Env(), cpus);
}

const OpenMap *FindOpenMap(int fd) {
  auto it = open_maps.find(fd);
  return it == open_maps.end() ? nullptr : &it->second;
}

}  // namespace cm
