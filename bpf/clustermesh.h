/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The one definition of every map key and value of the socket-LB datapath (DESIGN §5).
 * Included by bpf/sock_lb.c (the programs), native/src (the addon reports sizeof/offsetof of
 * every field through layouts()) and mirrored by lib/datapath/codecs.ts, which a test and
 * native/check-layout.ts compare field by field with what this header compiles to.
 *
 * Byte order: addresses and ports are in network byte order (as the socket hooks see them);
 * every other integer is in host byte order.
 * Padding is explicit and always zero, so equal structs are equal bytes (the datapath diffs
 * map contents byte-wise).
 */
#ifndef CLUSTERMESH_H
#define CLUSTERMESH_H

#include <linux/types.h>

/* L4 protocols as they appear in keys (the IANA numbers, same as IPPROTO_*). */
#define CM_PROTO_TCP 6
#define CM_PROTO_UDP 17

/* Backend states. Only backends in slots 1..count are ever selected; the agent puts the active
 * ones there and the others after them, so these states are informational for the programs. */
#define CM_BACKEND_ACTIVE      0
#define CM_BACKEND_TERMINATING 1
#define CM_BACKEND_QUARANTINED 2
#define CM_BACKEND_MAINTENANCE 3

/* Service flags (slot 0 only). */
#define CM_SVC_FLAG_NONE            0
#define CM_SVC_FLAG_REMOTE_BACKENDS (1 << 0) /* at least one backend lives in another cluster */

/* Backend IDs and rev NAT indexes start at 1; 0 means "none". */
#define CM_BACKEND_ID_NONE 0

/* A backend array entry with this port holds no backend (see cm_lb4_be). */
#define CM_BACKEND_UNUSED_PORT 0

/* Slot 0 of a service is the service itself; slots 1..count are its active backends. */
#define CM_SERVICE_SLOT 0

/* Slot 0 carries the backend IDs of slots 1..CM_LB_INLINE_BACKENDS itself; only slots beyond
 * that have entries of their own (see struct lb4_service). */
#define CM_LB_INLINE_BACKENDS 8

/* Capacities: 30k services x 4 backends need 30k service entries (every backend inline) and 120k
 * backends. The backend and rev NAT maps are arrays indexed by ID, so IDs stay below their
 * max_entries. */
#define CM_SERVICE_MAP_MAX_ENTRIES 262144
#define CM_BACKEND_MAP_MAX_ENTRIES 262144
#define CM_REV_NAT_MAP_MAX_ENTRIES 65536 /* rev_nat_index is a __u16 */
/* Per family: every pod, node and CIDR entry the remote clusters publish (Cilium's ipcache
 * holds 512k; ours only the remote clusters' share of it). */
#define CM_IPCACHE_MAP_MAX_ENTRIES 262144

/* ---- IPv4 -------------------------------------------------------------------------------- */

/* cm_lb4_svc key: one entry per frontend (its slot 0) and per slot beyond the inline ones. */
struct lb4_key {
	__be32 address;     /* VIP */
	__be16 dport;       /* frontend port */
	__u16 backend_slot; /* CM_SERVICE_SLOT or CM_LB_INLINE_BACKENDS + 1..n */
	__u8 proto;         /* CM_PROTO_* */
	__u8 pad[3];
};

/*
 * cm_lb4_svc value. Slot 0 is the service: count (active backends), rev_nat_index, flags, and in
 * backends[i] the backend of slot i + 1 for the first CM_LB_INLINE_BACKENDS slots (0 past the
 * last slot). A service with up to that many backends is this one entry: one map write (an
 * update replaces the whole element, so a reader never sees a new count with old backend IDs or
 * the other way round) and one lookup per connect. A slot n > CM_LB_INLINE_BACKENDS is an entry
 * of its own whose backends[0] is its backend, everything else zero. Chosen from the measured
 * per-element cost of a preallocated hash write, which does not grow with the value size, against
 * memory, which does (bench/map-costs.ts; ARCHITECTURE.md, datapath module).
 */
struct lb4_service {
	__u16 count;
	__u16 rev_nat_index;
	__u8 flags; /* CM_SVC_FLAG_* */
	__u8 pad[3];
	__u32 backends[CM_LB_INLINE_BACKENDS];
};

/* cm_lb4_be: an array indexed by backend_id. An entry no backend uses is all zero; port 0 is never
 * a backend's, so the programs treat an entry with port 0 as absent (CM_BACKEND_UNUSED_PORT). */
struct lb4_backend {
	__be32 address;
	__be16 port;
	__u8 proto;      /* CM_PROTO_* */
	__u8 state;      /* CM_BACKEND_* */
	__u16 cluster_id; /* 0 = local cluster */
	__u8 pad[2];
};

/* cm_lb4_rnat: an array indexed by rev_nat_index (a __u32 key: array keys are 4 bytes). An unused
 * entry is all zero, and port 0 is no frontend's, so it never matches a socket's frontend. */
struct lb4_reverse_nat {
	__be32 address;
	__be16 port;
	__u8 pad[2];
};

/* ---- IPv6 -------------------------------------------------------------------------------- */

union v6addr {
	__u8 addr[16];
	__u32 p[4];
};

struct lb6_key {
	union v6addr address;
	__be16 dport;
	__u16 backend_slot;
	__u8 proto;
	__u8 pad[3];
};

struct lb6_service {
	__u16 count;
	__u16 rev_nat_index;
	__u8 flags;
	__u8 pad[3];
	__u32 backends[CM_LB_INLINE_BACKENDS];
};

struct lb6_backend {
	union v6addr address;
	__be16 port;
	__u8 proto;
	__u8 state;
	__u16 cluster_id;
	__u8 pad[2];
};

struct lb6_reverse_nat {
	union v6addr address;
	__be16 port;
	__u8 pad[2];
};

/* ---- per-socket state (cm_sock4 / cm_sock6: socket-local storage) ---------------------- */

/* What one socket addressed and where the programs sent it: the reverse NAT of recvmsg() and
 * getpeername(), and the backend an unconnected UDP socket sticks to. It lives in the socket's
 * own storage (BPF_MAP_TYPE_SK_STORAGE), not in a node-wide LRU keyed by socket cookie: a shared
 * LRU let short TCP connections evict a long-lived UDP socket's entry, whose replies then came
 * from the backend's address (DNS and QUIC clients drop those). Socket storage has no capacity to
 * share and goes away with its socket; each socket holds CM_SOCK_PEERS frontends, and only an
 * unconnected UDP socket addressing more frontends than that replaces one of its own entries
 * (counted in CM_STAT_SOCK_PEER_REPLACED). bpf_sk_storage_get is allowed in cgroup/sock_addr
 * programs on this kernel (`bpftool feature probe`). The IPv4 table also serves IPv4-mapped
 * destinations (::ffff:<VIP>) of dual-stack IPv6 sockets. test/datapath/udp-under-churn.test.ts
 * shows the difference (the LRU failed it). */
#define CM_SOCK_PEERS 4 /* a power of two: the replacement index is masked with it */

struct sock4_peer {
	__be32 frontend;      /* the VIP the application addressed */
	__be32 backend;
	__be16 frontend_port;
	__be16 backend_port;
	__u32 backend_id;     /* UDP stickiness: reused while it still sits in backend_slot */
	__u16 backend_slot;   /* 1..count; 0 marks an unused entry */
	__u16 rev_nat_index;  /* checked against cm_lb4_rnat so a stale entry never rewrites */
};

struct sock4_peers {
	struct sock4_peer peer[CM_SOCK_PEERS];
	__u32 next_replaced; /* round robin over peer[] once all are in use */
};

struct sock6_peer {
	union v6addr frontend;
	union v6addr backend;
	__be16 frontend_port;
	__be16 backend_port;
	__u32 backend_id;
	__u16 backend_slot;
	__u16 rev_nat_index;
};

struct sock6_peers {
	struct sock6_peer peer[CM_SOCK_PEERS];
	__u32 next_replaced;
};

/* ---- counters (cm_stats: per-CPU array of __u64, index CM_STAT_*) ------------------------ */

/* What the programs could not do; lib/datapath reads the sums (Datapath.programStats()). */
#define CM_STAT_SOCK_STATE_FAILED  0 /* no socket storage (ENOMEM): translated, but replies show the backend */
#define CM_STAT_SOCK_PEER_REPLACED 1 /* a socket addressed more than CM_SOCK_PEERS frontends */
#define CM_STATS_COUNT             2

/* ---- remote ipcache (cm_ipcache4 / cm_ipcache6): address -> identity, cluster ----------- */

/* LPM trie keys: the kernel's struct bpf_lpm_trie_key layout, a prefix length in bits followed
 * by the address (host bits zero, so equal prefixes are equal bytes). A lookup with prefixlen
 * 32 (or 128) returns the longest stored prefix containing the address. */
struct ipcache4_key {
	__u32 prefixlen;
	__be32 address;
};

struct ipcache6_key {
	__u32 prefixlen;
	union v6addr address;
};

/* Value of both families. */
struct ipcache_value {
	__u32 identity;   /* the security identity the remote cluster allocated */
	__u16 cluster_id; /* never 0: only remote clusters are imported */
	__u8 pad[2];
};

/* Sizes the programs, the addon and the TS codecs all agree on (checked at compile time here and
 * at test time against lib/datapath/codecs.ts). C++ spells _Static_assert as static_assert. */
#ifdef __cplusplus
#define _Static_assert static_assert
#endif
_Static_assert(sizeof(struct lb4_key) == 12, "lb4_key");
_Static_assert(sizeof(struct lb4_service) == 8 + 4 * CM_LB_INLINE_BACKENDS, "lb4_service");
_Static_assert(sizeof(struct lb4_backend) == 12, "lb4_backend");
_Static_assert(sizeof(struct lb4_reverse_nat) == 8, "lb4_reverse_nat");
_Static_assert(sizeof(struct lb6_key) == 24, "lb6_key");
_Static_assert(sizeof(struct lb6_service) == 8 + 4 * CM_LB_INLINE_BACKENDS, "lb6_service");
_Static_assert(sizeof(struct lb6_backend) == 24, "lb6_backend");
_Static_assert(sizeof(struct lb6_reverse_nat) == 20, "lb6_reverse_nat");
_Static_assert(sizeof(struct sock4_peer) == 20, "sock4_peer");
_Static_assert(sizeof(struct sock4_peers) == 84, "sock4_peers");
_Static_assert(sizeof(struct sock6_peer) == 44, "sock6_peer");
_Static_assert(sizeof(struct sock6_peers) == 180, "sock6_peers");
_Static_assert(sizeof(struct ipcache4_key) == 8, "ipcache4_key");
_Static_assert(sizeof(struct ipcache6_key) == 20, "ipcache6_key");
_Static_assert(sizeof(struct ipcache_value) == 8, "ipcache_value");

#endif /* CLUSTERMESH_H */
