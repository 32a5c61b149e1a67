#include "errors.h"

#include <bpf/libbpf.h>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>

namespace cm {

namespace {
std::string last_warning;

int RememberWarning(enum libbpf_print_level level, const char *fmt, va_list args) {
  if (level != LIBBPF_WARN) return 0;
  char line[512];
  vsnprintf(line, sizeof(line), fmt, args);
  std::string text(line);
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  last_warning = text;
  return 0;
}

std::string ErrnoName(int err) {
  const char *name = strerrorname_np(err);
  return name ? name : "E" + std::to_string(err);
}
}  // namespace

void CaptureLibbpfWarnings() { libbpf_set_print(RememberWarning); }

std::string LastLibbpfWarning() {
  std::string warning = last_warning;
  last_warning.clear();
  return warning;
}

void ThrowErrno(Napi::Env env, int err, const std::string &sentence) {
  Napi::Error error = Napi::Error::New(env, ErrnoName(err) + ": " + sentence);
  error.Set("code", Napi::String::New(env, ErrnoName(err)));
  error.Set("errno", Napi::Number::New(env, err));
  throw error;
}

std::string BpfFailure(int err, const std::string &what) {
  if (err == EPERM || err == EACCES) return "loading BPF needs root (CAP_BPF+CAP_SYS_ADMIN)";
  return what + ": " + strerror(err);
}

}  // namespace cm
