#pragma once
#include <napi.h>

namespace cm {
// Attachments made with bpf_prog_attach belong to the cgroup, not to this process: they outlive it,
// which is what keeps the datapath working while the agent is down.
Napi::Value ProgQuery(const Napi::CallbackInfo &info);   // (cgroupDir, attachType) -> [{id, name}]
Napi::Value ProgAttach(const Napi::CallbackInfo &info);  // (progFd, cgroupDir, attachType, replaceProgId)
Napi::Value ProgDetach(const Napi::CallbackInfo &info);  // (progId, cgroupDir, attachType)
}  // namespace cm
