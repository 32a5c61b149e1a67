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
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "clustermesh.h"

/* Return values of cgroup/sock_addr programs: 1 lets the syscall proceed (possibly rewritten). */
#define SYS_PROCEED 1

#define PIN_BY_NAME __uint(pinning, LIBBPF_PIN_BY_NAME)

/* The service maps are preallocated hashes (slot 0 holding the first backend IDs inline) and the
 * backend and rev NAT maps arrays indexed by ID, BPF_F_MMAPABLE: the agent writes them with plain
 * stores into their mapped memory, no syscall (lib/datapath/state.ts ArrayMirror). Per element
 * written, that is what the kernel charges least for (bench/map-costs.ts; the choice in
 * ARCHITECTURE.md, datapath module). An array entry cannot be deleted: an unused one is zero. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct lb4_key);
	__type(value, struct lb4_service);
	__uint(max_entries, CM_SERVICE_MAP_MAX_ENTRIES);
	PIN_BY_NAME;
} cm_lb4_svc SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct lb4_backend);
	__uint(max_entries, CM_BACKEND_MAP_MAX_ENTRIES);
	__uint(map_flags, BPF_F_MMAPABLE);
	PIN_BY_NAME;
} cm_lb4_be SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct lb4_reverse_nat);
	__uint(max_entries, CM_REV_NAT_MAP_MAX_ENTRIES);
	__uint(map_flags, BPF_F_MMAPABLE);
	PIN_BY_NAME;
} cm_lb4_rnat SEC(".maps");

/* Per-socket state (why socket storage and not an LRU: bpf/clustermesh.h, struct sock4_peers). */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__type(key, int);
	__type(value, struct sock4_peers);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	PIN_BY_NAME;
} cm_sock4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct lb6_key);
	__type(value, struct lb6_service);
	__uint(max_entries, CM_SERVICE_MAP_MAX_ENTRIES);
	PIN_BY_NAME;
} cm_lb6_svc SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct lb6_backend);
	__uint(max_entries, CM_BACKEND_MAP_MAX_ENTRIES);
	__uint(map_flags, BPF_F_MMAPABLE);
	PIN_BY_NAME;
} cm_lb6_be SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct lb6_reverse_nat);
	__uint(max_entries, CM_REV_NAT_MAP_MAX_ENTRIES);
	__uint(map_flags, BPF_F_MMAPABLE);
	PIN_BY_NAME;
} cm_lb6_rnat SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__type(key, int);
	__type(value, struct sock6_peers);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	PIN_BY_NAME;
} cm_sock6 SEC(".maps");

/* Failures the programs cannot report to the caller (they always let the syscall proceed). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, CM_STATS_COUNT);
	PIN_BY_NAME;
} cm_stats SEC(".maps");

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

/* ::ffff:a.b.c.d, what a dual-stack AF_INET6 socket (not IPV6_V6ONLY) uses for an IPv4 peer. The
 * kernel runs only the *6 hooks for it, so they balance it with the IPv4 maps. */
static __always_inline int ip6_is_v4mapped(const union v6addr *a)
{
	return a->p[0] == 0 && a->p[1] == 0 && a->p[2] == bpf_htonl(0xffff);
}

static __always_inline void count_stat(__u32 index)
{
	__u64 *n = bpf_map_lookup_elem(&cm_stats, &index);

	if (n)
		*n += 1; /* per-CPU slot: no other CPU writes it */
}

/* A random slot in 1..count (count > 0 is checked by the caller). */
static __always_inline __u16 random_active_slot(__u16 count)
{
	return (__u16)(bpf_get_prandom_u32() % count) + 1;
}

/* A remembered UDP choice is reused only while that backend still sits in the same active slot. */
static __always_inline int affinity_still_valid(__u16 remembered_slot, __u32 remembered_id, __u16 count,
						__u32 slot_backend_id)
{
	return remembered_slot >= 1 && remembered_slot <= count &&
	       slot_backend_id != CM_BACKEND_ID_NONE && slot_backend_id == remembered_id;
}

/* The socket's state, created on first use; NULL (counted) only when the kernel has no memory.
 * Translation still happens then: the connection works, only its peer shows the backend. */
static __always_inline void *sock_state(struct bpf_sock_addr *ctx, void *map, int create)
{
	struct bpf_sock *sk = ctx->sk;
	void *state;

	if (!sk)
		return NULL;
	state = bpf_sk_storage_get(map, sk, NULL, create ? BPF_SK_STORAGE_GET_F_CREATE : 0);
	if (!state && create)
		count_stat(CM_STAT_SOCK_STATE_FAILED);
	return state;
}

/* A 32-bit word of a socket's entry: may_alias, so that store_changed's word reads see what the
 * typed field writes just stored (otherwise strict aliasing lets clang reorder them). */
typedef __u32 __attribute__((__may_alias__)) peer_word;

/* Stores `want` over `entry` (both `words` 32-bit words) only where they differ: a socket that
 * keeps its backend writes nothing. */
static __always_inline void store_changed(peer_word *entry, const peer_word *want, int words)
{
#pragma unroll
	for (int i = 0; i < words; i++)
		if (entry[i] != want[i])
			entry[i] = want[i];
}

_Static_assert(sizeof(struct sock4_peer) % 4 == 0 && sizeof(struct sock6_peer) % 4 == 0,
	       "socket peers are stored as 32-bit words");

/* Which of a socket's entries a new frontend takes (`used`: bit i set for each entry in use): a
 * free one, else the socket's own oldest one (counted). */
static __always_inline __u32 entry_for_new_frontend(__u32 used, __u32 *next_replaced)
{
#pragma unroll
	for (int i = 0; i < CM_SOCK_PEERS; i++)
		if (!(used & (1U << i)))
			return i;
	count_stat(CM_STAT_SOCK_PEER_REPLACED);
	return (*next_replaced)++ & (CM_SOCK_PEERS - 1);
}

/* Which side of a socket's entry a lookup matches: the frontend it addressed (on the way out) or
 * the backend it was sent to (on the way back). */
enum peer_side { BY_FRONTEND, BY_BACKEND };

/* ---- service slots, either family ---------------------------------------------------------- */

/* Both families' service maps hold one value layout, so one slot choice serves both. */
_Static_assert(sizeof(struct lb4_service) == sizeof(struct lb6_service) &&
		       __builtin_offsetof(struct lb4_service, count) == __builtin_offsetof(struct lb6_service, count) &&
		       __builtin_offsetof(struct lb4_service, rev_nat_index) ==
			       __builtin_offsetof(struct lb6_service, rev_nat_index) &&
		       __builtin_offsetof(struct lb4_service, backends) ==
			       __builtin_offsetof(struct lb6_service, backends),
	       "lb4_service and lb6_service share one layout");

/* A service map key (struct lb4_key or lb6_key, address and port filled in) with its map and
 * the fields the lookups below fill in. */
struct lb_lookup {
	void *map;
	void *key;
	__u16 *slot;
	__u8 *proto;
};

/* One entry of the service in `lookup`: slot 0, or a slot beyond the inline ones. */
static __always_inline const struct lb4_service *lb_slot(const struct lb_lookup *lookup, __u16 slot)
{
	*lookup->slot = slot;
	return bpf_map_lookup_elem(lookup->map, lookup->key);
}

/* A frontend's service and the backend a connection to it goes to. */
struct lb_choice {
	__u16 count; /* active backends */
	__u16 rev_nat_index;
	__u16 slot;
	__u32 backend_id;
};

/* The frontend's slot 0 if it is a service with an active backend, else NULL: only TCP and UDP. */
static __always_inline const struct lb4_service *lb_service(struct bpf_sock_addr *ctx, const struct lb_lookup *lookup,
							    struct lb_choice *choice)
{
	const struct lb4_service *svc;

	if (sock_proto(ctx, lookup->proto) < 0)
		return NULL;
	svc = lb_slot(lookup, CM_SERVICE_SLOT);
	if (!svc || svc->count == 0)
		return NULL;
	choice->count = svc->count;
	choice->rev_nat_index = svc->rev_nat_index;
	return svc;
}

/* The backend in `slot` (>= 1) of the service whose slot 0 is `svc`: inline up to
 * CM_LB_INLINE_BACKENDS, else in the slot's own entry; CM_BACKEND_ID_NONE when there is none. */
static __always_inline __u32 lb_slot_backend(const struct lb_lookup *lookup, const struct lb4_service *svc, __u16 slot)
{
	const struct lb4_service *entry;
	__u32 inline_index = (__u32)slot - 1;

	if (inline_index < CM_LB_INLINE_BACKENDS)
		return svc->backends[inline_index];
	entry = lb_slot(lookup, slot);
	return entry ? entry->backends[0] : CM_BACKEND_ID_NONE;
}

/*
 * The active slot the connection goes to, and its backend: UDP keeps the slot the socket
 * remembers for this frontend (remembered_slot, 0 for none) while affinity_still_valid, anything
 * else takes a random one, per connect for TCP. Returns 0 when the slot names no backend.
 */
static __always_inline int lb_choose(const struct lb_lookup *lookup, const struct lb4_service *svc,
				     __u16 remembered_slot, __u32 remembered_id, struct lb_choice *choice)
{
	if (remembered_slot && *lookup->proto == CM_PROTO_UDP) {
		choice->slot = remembered_slot;
		choice->backend_id = lb_slot_backend(lookup, svc, remembered_slot);
		if (affinity_still_valid(remembered_slot, remembered_id, choice->count, choice->backend_id))
			return 1;
	}
	choice->slot = random_active_slot(choice->count);
	choice->backend_id = lb_slot_backend(lookup, svc, choice->slot);
	return choice->backend_id != CM_BACKEND_ID_NONE;
}

/* ---- IPv4 ---------------------------------------------------------------------------------- */

/* The socket's entry whose `side` is address:port; when there is none, *used has bit i set for
 * each entry in use (what entry_for_new_frontend needs). */
static __always_inline struct sock4_peer *sock4_find(struct sock4_peers *peers, enum peer_side side, __be32 address,
						     __be16 port, __u32 *used)
{
	*used = 0;
#pragma unroll
	for (int i = 0; i < CM_SOCK_PEERS; i++) {
		struct sock4_peer *p = &peers->peer[i];

		if (p->backend_slot == 0)
			continue;
		*used |= 1U << i;
		if (side == BY_FRONTEND ? p->frontend == address && p->frontend_port == port
					: p->backend == address && p->backend_port == port)
			return p;
	}
	return NULL;
}

/*
 * Rewrites *address:*port (a frontend) to one of its active backends: sticky per socket and
 * frontend for UDP, random per connect for TCP. Returns 1 when it rewrote.
 */
static __always_inline int sock4_fwd(struct bpf_sock_addr *ctx, __be32 *address, __be16 *port)
{
	struct lb4_key key = { .address = *address, .dport = *port };
	struct lb_lookup lookup = { &cm_lb4_svc, &key, &key.backend_slot, &key.proto };
	const struct lb4_backend *backend;
	const struct lb4_service *svc;
	struct sock4_peer *entry = NULL;
	struct sock4_peers *peers;
	struct lb_choice choice;
	__u32 used;

	svc = lb_service(ctx, &lookup, &choice);
	if (!svc)
		return 0;
	peers = sock_state(ctx, &cm_sock4, 1);
	if (peers)
		entry = sock4_find(peers, BY_FRONTEND, key.address, key.dport, &used);
	if (!lb_choose(&lookup, svc, entry ? entry->backend_slot : 0, entry ? entry->backend_id : 0, &choice))
		return 0;
	backend = bpf_map_lookup_elem(&cm_lb4_be, &choice.backend_id);
	if (!backend || backend->port == CM_BACKEND_UNUSED_PORT)
		return 0;
	if (peers) {
		struct sock4_peer want = {
			.frontend = key.address, .backend = backend->address,
			.frontend_port = key.dport, .backend_port = backend->port,
			.backend_id = choice.backend_id, .backend_slot = choice.slot,
			.rev_nat_index = choice.rev_nat_index,
		};

		if (!entry)
			entry = &peers->peer[entry_for_new_frontend(used, &peers->next_replaced)];
		store_changed((peer_word *)entry, (const peer_word *)&want, sizeof(want) / 4);
	}
	*address = backend->address;
	*port = backend->port;
	return 1;
}

/* Rewrites *address:*port (a backend this socket was sent to) back to its frontend. */
static __always_inline int sock4_rev(struct bpf_sock_addr *ctx, __be32 *address, __be16 *port)
{
	const struct lb4_reverse_nat *rnat;
	struct sock4_peers *peers;
	struct sock4_peer *entry;
	__u32 rev_nat_index; /* the key of the cm_lb4_rnat array */
	__u32 used;

	peers = sock_state(ctx, &cm_sock4, 0);
	entry = peers ? sock4_find(peers, BY_BACKEND, *address, *port, &used) : NULL;
	if (!entry)
		return 0;
	rev_nat_index = entry->rev_nat_index;
	rnat = bpf_map_lookup_elem(&cm_lb4_rnat, &rev_nat_index);
	if (!rnat || rnat->address != entry->frontend || rnat->port != entry->frontend_port) {
		/* the service is gone or its index was reused: never show a stale frontend */
		entry->backend_slot = 0;
		return 0;
	}
	*address = entry->frontend;
	*port = entry->frontend_port;
	return 1;
}

/* connect4/sendmsg4 (BY_FRONTEND: to the backend) and recvmsg4/getpeername4 (back). */
static __always_inline void sock4_xlate(struct bpf_sock_addr *ctx, enum peer_side side)
{
	__be32 address = ctx->user_ip4;
	__be16 port = ctx_dst_port(ctx);

	if (!(side == BY_FRONTEND ? sock4_fwd(ctx, &address, &port) : sock4_rev(ctx, &address, &port)))
		return;
	ctx->user_ip4 = address;
	ctx_set_port(ctx, port);
}

/* ---- IPv6 ---------------------------------------------------------------------------------- */

static __always_inline struct sock6_peer *sock6_find(struct sock6_peers *peers, enum peer_side side,
						     const union v6addr *address, __be16 port, __u32 *used)
{
	*used = 0;
#pragma unroll
	for (int i = 0; i < CM_SOCK_PEERS; i++) {
		struct sock6_peer *p = &peers->peer[i];

		if (p->backend_slot == 0)
			continue;
		*used |= 1U << i;
		if (side == BY_FRONTEND ? p->frontend_port == port && ip6_equal(&p->frontend, address)
					: p->backend_port == port && ip6_equal(&p->backend, address))
			return p;
	}
	return NULL;
}

static __always_inline int sock6_fwd(struct bpf_sock_addr *ctx, union v6addr *address, __be16 *port)
{
	struct lb6_key key = { .address = *address, .dport = *port };
	struct lb_lookup lookup = { &cm_lb6_svc, &key, &key.backend_slot, &key.proto };
	const struct lb6_backend *backend;
	const struct lb4_service *svc;
	struct sock6_peer *entry = NULL;
	struct sock6_peers *peers;
	struct lb_choice choice;
	__u32 used;

	svc = lb_service(ctx, &lookup, &choice);
	if (!svc)
		return 0;
	peers = sock_state(ctx, &cm_sock6, 1);
	if (peers)
		entry = sock6_find(peers, BY_FRONTEND, &key.address, key.dport, &used);
	if (!lb_choose(&lookup, svc, entry ? entry->backend_slot : 0, entry ? entry->backend_id : 0, &choice))
		return 0;
	backend = bpf_map_lookup_elem(&cm_lb6_be, &choice.backend_id);
	if (!backend || backend->port == CM_BACKEND_UNUSED_PORT)
		return 0;
	if (peers) {
		struct sock6_peer want = {
			.frontend = key.address, .backend = backend->address,
			.frontend_port = key.dport, .backend_port = backend->port,
			.backend_id = choice.backend_id, .backend_slot = choice.slot,
			.rev_nat_index = choice.rev_nat_index,
		};

		if (!entry)
			entry = &peers->peer[entry_for_new_frontend(used, &peers->next_replaced)];
		store_changed((peer_word *)entry, (const peer_word *)&want, sizeof(want) / 4);
	}
	*address = backend->address;
	*port = backend->port;
	return 1;
}
static __always_inline int sock6_rev(struct bpf_sock_addr *ctx, union v6addr *address, __be16 *port)
{
	const struct lb6_reverse_nat *rnat;
	struct sock6_peers *peers;
	struct sock6_peer *entry;
	__u32 rev_nat_index; /* the key of the cm_lb6_rnat array */
	__u32 used;

	peers = sock_state(ctx, &cm_sock6, 0);
	entry = peers ? sock6_find(peers, BY_BACKEND, address, *port, &used) : NULL;
	if (!entry)
		return 0;
	rev_nat_index = entry->rev_nat_index;
	rnat = bpf_map_lookup_elem(&cm_lb6_rnat, &rev_nat_index);
	if (!rnat || !ip6_equal(&rnat->address, &entry->frontend) || rnat->port != entry->frontend_port) {
		entry->backend_slot = 0;
		return 0;
	}
	*address = entry->frontend;
	*port = entry->frontend_port;
	return 1;
}

/* The *6 hooks, as sock4_xlate. An IPv4-mapped address goes through the IPv4 maps and stays
 * IPv4-mapped. */
static __always_inline void sock6_xlate(struct bpf_sock_addr *ctx, enum peer_side side)
{
	__be16 port = ctx_dst_port(ctx);
	union v6addr address;
	int rewritten;

	ctx_get_ip6(ctx, &address);
	if (ip6_is_v4mapped(&address))
		rewritten = side == BY_FRONTEND ? sock4_fwd(ctx, &address.p[3], &port)
						: sock4_rev(ctx, &address.p[3], &port);
	else
		rewritten = side == BY_FRONTEND ? sock6_fwd(ctx, &address, &port) : sock6_rev(ctx, &address, &port);
	if (!rewritten)
		return;
	ctx_set_ip6(ctx, &address);
	ctx_set_port(ctx, port);
}

/* ---- programs (names <= 15 chars: the kernel keeps that many, the addon finds ours by name) -- */

SEC("cgroup/connect4")
int cm_connect4(struct bpf_sock_addr *ctx)
{
	sock4_xlate(ctx, BY_FRONTEND);
	return SYS_PROCEED;
}

SEC("cgroup/sendmsg4")
int cm_sendmsg4(struct bpf_sock_addr *ctx)
{
	sock4_xlate(ctx, BY_FRONTEND);
	return SYS_PROCEED;
}

SEC("cgroup/recvmsg4")
int cm_recvmsg4(struct bpf_sock_addr *ctx)
{
	sock4_xlate(ctx, BY_BACKEND);
	return SYS_PROCEED;
}

SEC("cgroup/getpeername4")
int cm_getpeername4(struct bpf_sock_addr *ctx)
{
	sock4_xlate(ctx, BY_BACKEND);
	return SYS_PROCEED;
}

SEC("cgroup/connect6")
int cm_connect6(struct bpf_sock_addr *ctx)
{
	sock6_xlate(ctx, BY_FRONTEND);
	return SYS_PROCEED;
}

SEC("cgroup/sendmsg6")
int cm_sendmsg6(struct bpf_sock_addr *ctx)
{
	sock6_xlate(ctx, BY_FRONTEND);
	return SYS_PROCEED;
}

SEC("cgroup/recvmsg6")
int cm_recvmsg6(struct bpf_sock_addr *ctx)
{
	sock6_xlate(ctx, BY_BACKEND);
	return SYS_PROCEED;
}

SEC("cgroup/getpeername6")
int cm_getpeername6(struct bpf_sock_addr *ctx)
{
	sock6_xlate(ctx, BY_BACKEND);
	return SYS_PROCEED;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
