#include "layouts.h"

#include <linux/bpf.h>

#include <cstddef>

#include "clustermesh.h"

namespace cm {

namespace {
#define FIELD(type, field)                                                     \
  do {                                                                         \
    Napi::Object f = Napi::Object::New(env);                                   \
    f.Set("offset", static_cast<uint32_t>(offsetof(struct type, field)));     \
    f.Set("size", static_cast<uint32_t>(sizeof(((struct type *)nullptr)->field))); \
    fields.Set(#field, f);                                                     \
  } while (0)

#define STRUCT(type, ...)                                        \
  do {                                                           \
    Napi::Object fields = Napi::Object::New(env);                \
    __VA_ARGS__;                                                 \
    Napi::Object s = Napi::Object::New(env);                     \
    s.Set("size", static_cast<uint32_t>(sizeof(struct type)));   \
    s.Set("fields", fields);                                     \
    result.Set(#type, s);                                        \
  } while (0)
}  // namespace

Napi::Value Layouts(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  Napi::Object result = Napi::Object::New(env);
  STRUCT(lb4_key, FIELD(lb4_key, address); FIELD(lb4_key, dport); FIELD(lb4_key, backend_slot);
         FIELD(lb4_key, proto); FIELD(lb4_key, pad));
  STRUCT(lb4_service, FIELD(lb4_service, count); FIELD(lb4_service, rev_nat_index);
         FIELD(lb4_service, flags); FIELD(lb4_service, pad); FIELD(lb4_service, backends));
  STRUCT(lb4_backend, FIELD(lb4_backend, address); FIELD(lb4_backend, port); FIELD(lb4_backend, proto);
         FIELD(lb4_backend, state); FIELD(lb4_backend, cluster_id); FIELD(lb4_backend, pad));
  STRUCT(lb4_reverse_nat, FIELD(lb4_reverse_nat, address); FIELD(lb4_reverse_nat, port);
         FIELD(lb4_reverse_nat, pad));
  STRUCT(lb6_key, FIELD(lb6_key, address); FIELD(lb6_key, dport); FIELD(lb6_key, backend_slot);
         FIELD(lb6_key, proto); FIELD(lb6_key, pad));
  STRUCT(lb6_service, FIELD(lb6_service, count); FIELD(lb6_service, rev_nat_index);
         FIELD(lb6_service, flags); FIELD(lb6_service, pad); FIELD(lb6_service, backends));
  STRUCT(lb6_backend, FIELD(lb6_backend, address); FIELD(lb6_backend, port); FIELD(lb6_backend, proto);
         FIELD(lb6_backend, state); FIELD(lb6_backend, cluster_id); FIELD(lb6_backend, pad));
  STRUCT(lb6_reverse_nat, FIELD(lb6_reverse_nat, address); FIELD(lb6_reverse_nat, port);
         FIELD(lb6_reverse_nat, pad));
  STRUCT(sock4_peer, FIELD(sock4_peer, frontend); FIELD(sock4_peer, backend); FIELD(sock4_peer, frontend_port);
         FIELD(sock4_peer, backend_port); FIELD(sock4_peer, backend_id); FIELD(sock4_peer, backend_slot);
         FIELD(sock4_peer, rev_nat_index));
  STRUCT(sock4_peers, FIELD(sock4_peers, peer); FIELD(sock4_peers, next_replaced));
  STRUCT(sock6_peer, FIELD(sock6_peer, frontend); FIELD(sock6_peer, backend); FIELD(sock6_peer, frontend_port);
         FIELD(sock6_peer, backend_port); FIELD(sock6_peer, backend_id); FIELD(sock6_peer, backend_slot);
         FIELD(sock6_peer, rev_nat_index));
  STRUCT(sock6_peers, FIELD(sock6_peers, peer); FIELD(sock6_peers, next_replaced));
  STRUCT(ipcache4_key, FIELD(ipcache4_key, prefixlen); FIELD(ipcache4_key, address));
  STRUCT(ipcache6_key, FIELD(ipcache6_key, prefixlen); FIELD(ipcache6_key, address));
  STRUCT(ipcache_value, FIELD(ipcache_value, identity); FIELD(ipcache_value, cluster_id); FIELD(ipcache_value, pad));
  return result;
}

Napi::Value Constants(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  Napi::Object c = Napi::Object::New(env);
#define CONSTANT(name) c.Set(#name, static_cast<double>(name))
  CONSTANT(CM_PROTO_TCP);
  CONSTANT(CM_PROTO_UDP);
  CONSTANT(CM_BACKEND_ACTIVE);
  CONSTANT(CM_BACKEND_TERMINATING);
  CONSTANT(CM_BACKEND_QUARANTINED);
  CONSTANT(CM_BACKEND_MAINTENANCE);
  CONSTANT(CM_SVC_FLAG_NONE);
  CONSTANT(CM_SVC_FLAG_REMOTE_BACKENDS);
  CONSTANT(CM_BACKEND_ID_NONE);
  CONSTANT(CM_BACKEND_UNUSED_PORT);
  CONSTANT(CM_SERVICE_SLOT);
  CONSTANT(CM_LB_INLINE_BACKENDS);
  CONSTANT(CM_SERVICE_MAP_MAX_ENTRIES);
  CONSTANT(CM_BACKEND_MAP_MAX_ENTRIES);
  CONSTANT(CM_REV_NAT_MAP_MAX_ENTRIES);
  CONSTANT(CM_SOCK_PEERS);
  CONSTANT(CM_STAT_SOCK_STATE_FAILED);
  CONSTANT(CM_STAT_SOCK_PEER_REPLACED);
  CONSTANT(CM_STATS_COUNT);
  CONSTANT(CM_IPCACHE_MAP_MAX_ENTRIES);
  // The kernel's attach points of our programs, so a process without the object can detach them.
  CONSTANT(BPF_CGROUP_INET4_CONNECT);
  CONSTANT(BPF_CGROUP_INET6_CONNECT);
  CONSTANT(BPF_CGROUP_UDP4_SENDMSG);
  CONSTANT(BPF_CGROUP_UDP6_SENDMSG);
  CONSTANT(BPF_CGROUP_UDP4_RECVMSG);
  CONSTANT(BPF_CGROUP_UDP6_RECVMSG);
  CONSTANT(BPF_CGROUP_INET4_GETPEERNAME);
  CONSTANT(BPF_CGROUP_INET6_GETPEERNAME);
#undef CONSTANT
  return c;
}

}  // namespace cm
