// One-line errors that carry errno: message "EPERM: <what is wrong and what to do>",
// with .code = "EPERM" and .errno = 1, so TS callers can branch on the code.
#pragma once
#include <napi.h>
#include <string>

namespace cm {

[[noreturn]] void ThrowErrno(Napi::Env env, int err, const std::string &sentence);

// The sentence for a failed bpf() call, with the one common cause spelled out.
std::string BpfFailure(int err, const std::string &what);

// libbpf's warnings (which include the whole verifier log of a rejected program) are captured,
// not printed: StartLibbpfLog() begins a fresh capture, TakeLibbpfLog() returns and clears it.
void StartLibbpfLog();
std::string TakeLibbpfLog();

}  // namespace cm
