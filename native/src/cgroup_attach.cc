#include "cgroup_attach.h"

#include <bpf/bpf.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "errors.h"

namespace cm {

namespace {
constexpr uint32_t kMaxAttachedPrograms = 64;

// Closes the fd when the scope ends, also when a JS exception unwinds it.
struct Fd {
  int fd;
  explicit Fd(int value) : fd(value) {}
  ~Fd() {
    if (fd >= 0) close(fd);
  }
  Fd(const Fd &) = delete;
  Fd &operator=(const Fd &) = delete;
};

int OpenCgroup(Napi::Env env, const std::string &dir) {
  struct statfs fs;
  if (statfs(dir.c_str(), &fs) != 0 || fs.f_type != CGROUP2_SUPER_MAGIC)
    ThrowErrno(env, ENOENT,
               "cgroup v2 not found at " + dir + ": pass a directory under the cgroup2 mount (see /proc/mounts)");
  int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) ThrowErrno(env, errno, "cannot open cgroup " + dir);
  return fd;
}

int ProgFdById(Napi::Env env, uint32_t id) {
  int fd = bpf_prog_get_fd_by_id(id);
  if (fd < 0) ThrowErrno(env, errno, BpfFailure(errno, "cannot open program id " + std::to_string(id)));
  return fd;
}

std::string ProgName(Napi::Env env, uint32_t id) {
  Fd prog(ProgFdById(env, id));
  bpf_prog_info prog_info = {};
  uint32_t len = sizeof(prog_info);
  if (bpf_obj_get_info_by_fd(prog.fd, &prog_info, &len) != 0)
    ThrowErrno(env, errno, BpfFailure(errno, "cannot read program info"));
  return prog_info.name;
}

bpf_attach_type AttachType(const Napi::Value &value) {
  return static_cast<bpf_attach_type>(value.As<Napi::Number>().Int32Value());
}
}  // namespace

Napi::Value ProgQuery(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  Fd cgroup(OpenCgroup(env, info[0].As<Napi::String>()));
  uint32_t ids[kMaxAttachedPrograms];
  uint32_t count = kMaxAttachedPrograms, attach_flags = 0;
  if (bpf_prog_query(cgroup.fd, AttachType(info[1]), 0, &attach_flags, ids, &count) != 0)
    ThrowErrno(env, errno, BpfFailure(errno, "cannot query programs attached to the cgroup"));
  Napi::Array programs = Napi::Array::New(env, count);
  for (uint32_t i = 0; i < count; i++) {
    Napi::Object p = Napi::Object::New(env);
    p.Set("id", ids[i]);
    p.Set("name", ProgName(env, ids[i]));
    programs.Set(i, p);
  }
  return programs;
}

Napi::Value ProgAttach(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  int prog_fd = info[0].As<Napi::Number>().Int32Value();
  Fd cgroup(OpenCgroup(env, info[1].As<Napi::String>()));
  uint32_t replace_id = info[3].As<Napi::Number>().Uint32Value();
  // Replacing in place (BPF_F_REPLACE) leaves no moment without a program on the hook.
  Fd replaced(replace_id ? ProgFdById(env, replace_id) : -1);
  LIBBPF_OPTS(bpf_prog_attach_opts, opts, .flags = BPF_F_ALLOW_MULTI | (replace_id ? BPF_F_REPLACE : 0),
              .replace_prog_fd = replaced.fd >= 0 ? replaced.fd : 0);
  if (bpf_prog_attach_opts(prog_fd, cgroup.fd, AttachType(info[2]), &opts) != 0)
    ThrowErrno(env, errno, BpfFailure(errno, "cannot attach program to the cgroup"));
  return env.Undefined();
}

Napi::Value ProgDetach(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  Fd prog(ProgFdById(env, info[0].As<Napi::Number>().Uint32Value()));
  Fd cgroup(OpenCgroup(env, info[1].As<Napi::String>()));
  if (bpf_prog_detach2(prog.fd, cgroup.fd, AttachType(info[2])) != 0 && errno != ENOENT)
    ThrowErrno(env, errno, BpfFailure(errno, "cannot detach program from the cgroup"));
  return env.Undefined();
}

}  // namespace cm
