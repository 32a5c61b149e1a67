// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Socket-level load balancing for global services (DESIGN §5), in the style of Cilium's
 * bpf_sock.c: a connect() (TCP, connected UDP) or a sendmsg() (unconnected UDP) to a service
 * frontend is rewritten once, at the socket, to one of the service's active backends; recvmsg()
 * and getpeername() turn the backend back into the frontend. No per-packet NAT.
 *
 * A frontend that is not in the maps, or has no active backend, is left untouched: the caller's
 * connect() proceeds to the VIP itself (and, with no route for it, fails as unreachable).
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "clustermesh.h"

/* Return values of cgroup/sock_addr programs: 1 lets the syscall proceed (possibly rewritten). */
#define SYS_PROCEED 1

#define PIN_BY_NAME __uint(pinning, LIBBPF_PIN_BY_NAME)

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct lb4_key);
	__type(value, struct lb4_service);
	__uint(max_entries, CM_SERVICE_MAP_MAX_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	PIN_BY_NAME;
} cm_lb4_svc SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, struct lb4_backend);
	__uint(max_entries, CM_BACKEND_MAP_MAX_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	PIN_BY_NAME;
} cm_lb4_be SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u16);
	__type(value, struct lb4_reverse_nat);
	__uint(max_entries, CM_REV_NAT_MAP_MAX_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	PIN_BY_NAME;
} cm_lb4_rnat SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct lb4_sock_rnat_key);
	__type(value, struct lb4_sock_rnat_value);
	__uint(max_entries, CM_SOCK_MAP_MAX_ENTRIES);
	PIN_BY_NAME;
} cm_lb4_sk_rnat SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct lb4_affinity_key);
	__type(value, struct lb_affinity_value);
	__uint(max_entries, CM_SOCK_MAP_MAX_ENTRIES);
	PIN_BY_NAME;
} cm_lb4_affin SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct lb6_key);
	__type(value, struct lb6_service);
	__uint(max_entries, CM_SERVICE_MAP_MAX_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	PIN_BY_NAME;
} cm_lb6_svc SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, struct lb6_backend);
	__uint(max_entries, CM_BACKEND_MAP_MAX_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	PIN_BY_NAME;
} cm_lb6_be SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u16);
	__type(value, struct lb6_reverse_nat);
	__uint(max_entries, CM_REV_NAT_MAP_MAX_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	PIN_BY_NAME;
} cm_lb6_rnat SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct lb6_sock_rnat_key);
	__type(value, struct lb6_sock_rnat_value);
	__uint(max_entries, CM_SOCK_MAP_MAX_ENTRIES);
	PIN_BY_NAME;
} cm_lb6_sk_rnat SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct lb6_affinity_key);
	__type(value, struct lb_affinity_value);
	__uint(max_entries, CM_SOCK_MAP_MAX_ENTRIES);
	PIN_BY_NAME;
} cm_lb6_affin SEC(".maps");

/* Remote ipcache: written by the agent, read by `clustermesh identity` through the agent. No
 * program looks them up yet (the datapath enforces no policy); libbpf creates and pins every map
 * the object declares, referenced or not. LPM tries require BPF_F_NO_PREALLOC. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct ipcache4_key);
	__type(value, struct ipcache_value);
	__uint(max_entries, CM_IPCACHE_MAP_MAX_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	PIN_BY_NAME;
} cm_ipcache4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct ipcache6_key);
	__type(value, struct ipcache_value);
	__uint(max_entries, CM_IPCACHE_MAP_MAX_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	PIN_BY_NAME;
} cm_ipcache6 SEC(".maps");

/* ---- small helpers ------------------------------------------------------------------------- */

/* Only TCP and UDP are balanced; anything else is left alone. */
static __always_inline int sock_proto(const struct bpf_sock_addr *ctx, __u8 *proto)
{
	__u32 p = ctx->protocol;

	if (p != CM_PROTO_TCP && p != CM_PROTO_UDP)
		return -1;
	*proto = (__u8)p;
	return 0;
}

/* user_port holds a network-order port in its low 16 bits; read it with one 4-byte load. */
static __always_inline __be16 ctx_dst_port(const struct bpf_sock_addr *ctx)
{
	volatile __u32 port = ctx->user_port;

	return (__be16)port;
}

static __always_inline void ctx_set_port(struct bpf_sock_addr *ctx, __be16 port)
{
	ctx->user_port = (__u32)port;
}

static __always_inline void ctx_get_ip6(const struct bpf_sock_addr *ctx, union v6addr *addr)
{
	addr->p[0] = ctx->user_ip6[0];
	addr->p[1] = ctx->user_ip6[1];
	addr->p[2] = ctx->user_ip6[2];
	addr->p[3] = ctx->user_ip6[3];
}

static __always_inline void ctx_set_ip6(struct bpf_sock_addr *ctx, const union v6addr *addr)
{
	ctx->user_ip6[0] = addr->p[0];
	ctx->user_ip6[1] = addr->p[1];
	ctx->user_ip6[2] = addr->p[2];
	ctx->user_ip6[3] = addr->p[3];
}

static __always_inline int ip6_equal(const union v6addr *a, const union v6addr *b)
{
	return a->p[0] == b->p[0] && a->p[1] == b->p[1] && a->p[2] == b->p[2] && a->p[3] == b->p[3];
}

/* A random slot in 1..count (count > 0 is checked by the caller). */
static __always_inline __u16 random_active_slot(__u16 count)
{
	return (__u16)(bpf_get_prandom_u32() % count) + 1;
}

/* A remembered UDP choice is reused only while that backend still sits in the same active slot. */
static __always_inline int affinity_still_valid(const struct lb_affinity_value *aff, __u16 count,
						__u32 slot_backend_id)
{
	return aff->backend_slot >= 1 && aff->backend_slot <= count &&
	       slot_backend_id != CM_BACKEND_ID_NONE && slot_backend_id == aff->backend_id;
}

/* ---- IPv4 ---------------------------------------------------------------------------------- */

static __always_inline const struct lb4_service *lb4_slot(struct lb4_key *key, __u16 slot)
{
	key->backend_slot = slot;
	return bpf_map_lookup_elem(&cm_lb4_svc, key);
}

/* Picks the slot for this socket: sticky per socket for UDP, random per connect for TCP. */
static __always_inline const struct lb4_service *lb4_pick(struct lb4_key *key, __u16 count, __u64 cookie)
{
	struct lb4_affinity_key akey = {
		.cookie = cookie, .address = key->address, .dport = key->dport, .proto = key->proto,
	};
	struct lb_affinity_value aval = {};
	const struct lb_affinity_value *aff;
	const struct lb4_service *slot_entry;

	if (key->proto != CM_PROTO_UDP)
		return lb4_slot(key, random_active_slot(count));

	aff = bpf_map_lookup_elem(&cm_lb4_affin, &akey);
	if (aff) {
		slot_entry = lb4_slot(key, aff->backend_slot);
		if (affinity_still_valid(aff, count, slot_entry ? slot_entry->backend_id : CM_BACKEND_ID_NONE))
			return slot_entry;
	}
	aval.backend_slot = random_active_slot(count);
	slot_entry = lb4_slot(key, aval.backend_slot);
	if (!slot_entry)
		return NULL;
	aval.backend_id = slot_entry->backend_id;
	bpf_map_update_elem(&cm_lb4_affin, &akey, &aval, BPF_ANY);
	return slot_entry;
}

static __always_inline void lb4_remember_frontend(__u64 cookie, const struct lb4_backend *backend,
						  const struct lb4_key *frontend, __u16 rev_nat_index)
{
	struct lb4_sock_rnat_key key = {
		.cookie = cookie, .address = backend->address, .port = backend->port,
	};
	struct lb4_sock_rnat_value val = {
		.address = frontend->address, .port = frontend->dport, .rev_nat_index = rev_nat_index,
	};

	bpf_map_update_elem(&cm_lb4_sk_rnat, &key, &val, BPF_ANY);
}

static __always_inline void sock4_xlate_fwd(struct bpf_sock_addr *ctx)
{
	struct lb4_key key = {};
	const struct lb4_service *svc, *slot_entry;
	const struct lb4_backend *backend;
	__u16 count, rev_nat_index;
	__u32 backend_id;
	__u64 cookie;

	if (sock_proto(ctx, &key.proto) < 0)
		return;
	key.address = ctx->user_ip4;
	key.dport = ctx_dst_port(ctx);

	svc = lb4_slot(&key, CM_SERVICE_SLOT);
	if (!svc || svc->count == 0)
		return;
	count = svc->count;
	rev_nat_index = svc->rev_nat_index;

	cookie = bpf_get_socket_cookie(ctx);
	slot_entry = lb4_pick(&key, count, cookie);
	if (!slot_entry)
		return;
	backend_id = slot_entry->backend_id;
	backend = bpf_map_lookup_elem(&cm_lb4_be, &backend_id);
	if (!backend)
		return;

	key.backend_slot = CM_SERVICE_SLOT;
	lb4_remember_frontend(cookie, backend, &key, rev_nat_index);
	ctx->user_ip4 = backend->address;
	ctx_set_port(ctx, backend->port);
}

static __always_inline void sock4_xlate_rev(struct bpf_sock_addr *ctx)
{
	struct lb4_sock_rnat_key key = {
		.cookie = bpf_get_socket_cookie(ctx), .address = ctx->user_ip4, .port = ctx_dst_port(ctx),
	};
	const struct lb4_sock_rnat_value *val;
	const struct lb4_reverse_nat *rnat;
	__u16 rev_nat_index;

	val = bpf_map_lookup_elem(&cm_lb4_sk_rnat, &key);
	if (!val)
		return;
	rev_nat_index = val->rev_nat_index;
	rnat = bpf_map_lookup_elem(&cm_lb4_rnat, &rev_nat_index);
	if (!rnat || rnat->address != val->address || rnat->port != val->port) {
		/* the service is gone or its index was reused: never show a stale frontend */
		bpf_map_delete_elem(&cm_lb4_sk_rnat, &key);
		return;
	}
	ctx->user_ip4 = val->address;
	ctx_set_port(ctx, val->port);
}

/* ---- IPv6 ---------------------------------------------------------------------------------- */

static __always_inline const struct lb6_service *lb6_slot(struct lb6_key *key, __u16 slot)
{
	key->backend_slot = slot;
	return bpf_map_lookup_elem(&cm_lb6_svc, key);
}

static __always_inline const struct lb6_service *lb6_pick(struct lb6_key *key, __u16 count, __u64 cookie)
{
	struct lb6_affinity_key akey = {
		.cookie = cookie, .address = key->address, .dport = key->dport, .proto = key->proto,
	};
	struct lb_affinity_value aval = {};
	const struct lb_affinity_value *aff;
	const struct lb6_service *slot_entry;

	if (key->proto != CM_PROTO_UDP)
		return lb6_slot(key, random_active_slot(count));

	aff = bpf_map_lookup_elem(&cm_lb6_affin, &akey);
	if (aff) {
		slot_entry = lb6_slot(key, aff->backend_slot);
		if (affinity_still_valid(aff, count, slot_entry ? slot_entry->backend_id : CM_BACKEND_ID_NONE))
			return slot_entry;
	}
	aval.backend_slot = random_active_slot(count);
	slot_entry = lb6_slot(key, aval.backend_slot);
	if (!slot_entry)
		return NULL;
	aval.backend_id = slot_entry->backend_id;
	bpf_map_update_elem(&cm_lb6_affin, &akey, &aval, BPF_ANY);
	return slot_entry;
}

static __always_inline void lb6_remember_frontend(__u64 cookie, const struct lb6_backend *backend,
						  const struct lb6_key *frontend, __u16 rev_nat_index)
{
	struct lb6_sock_rnat_key key = {
		.cookie = cookie, .address = backend->address, .port = backend->port,
	};
	struct lb6_sock_rnat_value val = {
		.address = frontend->address, .port = frontend->dport, .rev_nat_index = rev_nat_index,
	};

	bpf_map_update_elem(&cm_lb6_sk_rnat, &key, &val, BPF_ANY);
}

static __always_inline void sock6_xlate_fwd(struct bpf_sock_addr *ctx)
{
	struct lb6_key key = {};
	const struct lb6_service *svc, *slot_entry;
	const struct lb6_backend *backend;
	__u16 count, rev_nat_index;
	__u32 backend_id;
	__u64 cookie;

	if (sock_proto(ctx, &key.proto) < 0)
		return;
	ctx_get_ip6(ctx, &key.address);
	key.dport = ctx_dst_port(ctx);

	svc = lb6_slot(&key, CM_SERVICE_SLOT);
	if (!svc || svc->count == 0)
		return;
	count = svc->count;
	rev_nat_index = svc->rev_nat_index;

	cookie = bpf_get_socket_cookie(ctx);
	slot_entry = lb6_pick(&key, count, cookie);
	if (!slot_entry)
		return;
	backend_id = slot_entry->backend_id;
	backend = bpf_map_lookup_elem(&cm_lb6_be, &backend_id);
	if (!backend)
		return;

	key.backend_slot = CM_SERVICE_SLOT;
	lb6_remember_frontend(cookie, backend, &key, rev_nat_index);
	ctx_set_ip6(ctx, &backend->address);
	ctx_set_port(ctx, backend->port);
}

static __always_inline void sock6_xlate_rev(struct bpf_sock_addr *ctx)
{
	struct lb6_sock_rnat_key key = {
		.cookie = bpf_get_socket_cookie(ctx), .port = ctx_dst_port(ctx),
	};
	const struct lb6_sock_rnat_value *val;
	const struct lb6_reverse_nat *rnat;
	__u16 rev_nat_index;

	ctx_get_ip6(ctx, &key.address);
	val = bpf_map_lookup_elem(&cm_lb6_sk_rnat, &key);
	if (!val)
		return;
	rev_nat_index = val->rev_nat_index;
	rnat = bpf_map_lookup_elem(&cm_lb6_rnat, &rev_nat_index);
	if (!rnat || !ip6_equal(&rnat->address, &val->address) || rnat->port != val->port) {
		bpf_map_delete_elem(&cm_lb6_sk_rnat, &key);
		return;
	}
	ctx_set_ip6(ctx, &val->address);
	ctx_set_port(ctx, val->port);
}

/* ---- programs (names <= 15 chars: the kernel keeps that many, the addon finds ours by name) -- */

SEC("cgroup/connect4")
int cm_connect4(struct bpf_sock_addr *ctx)
{
	sock4_xlate_fwd(ctx);
	return SYS_PROCEED;
}

SEC("cgroup/sendmsg4")
int cm_sendmsg4(struct bpf_sock_addr *ctx)
{
	sock4_xlate_fwd(ctx);
	return SYS_PROCEED;
}

SEC("cgroup/recvmsg4")
int cm_recvmsg4(struct bpf_sock_addr *ctx)
{
	sock4_xlate_rev(ctx);
	return SYS_PROCEED;
}

SEC("cgroup/getpeername4")
int cm_getpeername4(struct bpf_sock_addr *ctx)
{
	sock4_xlate_rev(ctx);
	return SYS_PROCEED;
}

SEC("cgroup/connect6")
int cm_connect6(struct bpf_sock_addr *ctx)
{
	sock6_xlate_fwd(ctx);
	return SYS_PROCEED;
}

SEC("cgroup/sendmsg6")
int cm_sendmsg6(struct bpf_sock_addr *ctx)
{
	sock6_xlate_fwd(ctx);
	return SYS_PROCEED;
}

SEC("cgroup/recvmsg6")
int cm_recvmsg6(struct bpf_sock_addr *ctx)
{
	sock6_xlate_rev(ctx);
	return SYS_PROCEED;
}

SEC("cgroup/getpeername6")
int cm_getpeername6(struct bpf_sock_addr *ctx)
{
	sock6_xlate_rev(ctx);
	return SYS_PROCEED;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
