#include "errors.h"

#include <bpf/libbpf.h>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>

namespace cm {

namespace {
std::string libbpf_log;

// Keeps every warning whole: a verifier log is one warning of many lines, often kilobytes.
int RememberWarning(enum libbpf_print_level level, const char *fmt, va_list args) {
  if (level != LIBBPF_WARN) return 0;
  va_list measure;
  va_copy(measure, args);
  int length = vsnprintf(nullptr, 0, fmt, measure);
  va_end(measure);
  if (length <= 0) return 0;
  std::string text(static_cast<size_t>(length), '\0');
  vsnprintf(text.data(), text.size() + 1, fmt, args);
  libbpf_log += text;
  if (libbpf_log.back() != '\n') libbpf_log += '\n';
  return 0;
}

std::string ErrnoName(int err) {
  const char *name = strerrorname_np(err);
  return name ? name : "E" + std::to_string(err);
}
}  // namespace

void StartLibbpfLog() {
  libbpf_set_print(RememberWarning);
  libbpf_log.clear();
}

std::string TakeLibbpfLog() {
  std::string log;
  log.swap(libbpf_log);
  while (!log.empty() && (log.back() == '\n' || log.back() == ' ')) log.pop_back();
  return log;
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
