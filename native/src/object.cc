#include "object.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>

#include <cerrno>
#include <map>
#include <string>

#include "errors.h"

namespace cm {

namespace {
std::map<int, bpf_object *> open_objects;
int next_object_id = 1;

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
  std::string detail = LastLibbpfWarning();
  std::string sentence = BpfFailure(err, "loading " + object_path + " (pins in " + pin_dir + ") failed");
  if (err == EPERM || err == EACCES || detail.empty()) return sentence;
  return sentence + " (libbpf: " + detail + "); if a pinned map is incompatible, destroy " + pin_dir +
         " first";
}
}  // namespace

Napi::Value OpenObject(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  std::string object_path = info[0].As<Napi::String>();
  std::string pin_dir = info[1].As<Napi::String>();

  RequireBpffs(env, pin_dir);
  MakeDirs(env, pin_dir);
  CaptureLibbpfWarnings();

  LIBBPF_OPTS(bpf_object_open_opts, opts, .pin_root_path = pin_dir.c_str());
  bpf_object *obj = bpf_object__open_file(object_path.c_str(), &opts);
  if (!obj) {
    int err = errno;
    ThrowErrno(env, err, "cannot open BPF object " + object_path + ": run `make -C bpf` (" + strerror(err) + ")");
  }
  int load_result = bpf_object__load(obj);
  if (load_result != 0) {
    int err = -load_result;
    std::string sentence = LoadFailure(err, object_path, pin_dir);
    bpf_object__close(obj);
    ThrowErrno(env, err, sentence);
  }

  int id = next_object_id++;
  open_objects[id] = obj;
  Napi::Object result = Napi::Object::New(env);
  result.Set("id", id);
  result.Set("maps", DescribeMaps(env, obj));
  result.Set("programs", DescribePrograms(env, obj));
  return result;
}

Napi::Value CloseObject(const Napi::CallbackInfo &info) {
  int id = info[0].As<Napi::Number>().Int32Value();
  auto it = open_objects.find(id);
  if (it != open_objects.end()) {
    bpf_object__close(it->second);
    open_objects.erase(it);
  }
  return info.Env().Undefined();
}

}  // namespace cm
