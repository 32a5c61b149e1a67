#pragma once
#include <napi.h>

namespace cm {
// openObject(objectPath, pinDir) -> { id, maps: {name: {fd, type, keySize, valueSize, maxEntries}},
//                                     programs: [{name, fd, id, attachType}] }
Napi::Value OpenObject(const Napi::CallbackInfo &info);
// closeObject(id): releases the fds; pinned maps and cgroup attachments stay.
Napi::Value CloseObject(const Napi::CallbackInfo &info);
}  // namespace cm
