// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Map variants for bench/map-costs.ts: the service, backend and reverse-NAT maps of
 * bpf/sock_lb.c (same keys, same capacities), each in every kind and flag the bench compares,
 * and the service map with each value layout it compares: one entry per slot (the layout
 * before: every value 12 bytes) or the first K backend IDs inline in slot 0 (K = 4, 8, 16; the
 * shape of struct lb4_service in bpf/clustermesh.h); the arrays also BPF_F_MMAPABLE, written by
 * stores into their mapped memory. No programs: only the maps are created (unpinned, freed when
 * the bench closes the object).
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "clustermesh.h"

#define MAP(name, kind, key_t, value_t, entries, flags)                                            \
	struct {                                                                                   \
		__uint(type, kind);                                                                \
		__type(key, key_t);                                                                \
		__type(value, value_t);                                                            \
		__uint(max_entries, entries);                                                      \
		__uint(map_flags, flags);                                                          \
	} name SEC(".maps")

/* The value of the layout before: slot 0 carried count, every other slot one backend_id. */
struct svc_value_per_slot {
	__u32 backend_id;
	__u16 count;
	__u16 rev_nat_index;
	__u8 flags;
	__u8 pad[3];
};

#define INLINE_VALUE(k)                                                                            \
	struct svc_value_inline##k {                                                               \
		__u16 count;                                                                       \
		__u16 rev_nat_index;                                                               \
		__u8 flags;                                                                        \
		__u8 pad[3];                                                                       \
		__u32 backends[k];                                                                 \
	}
INLINE_VALUE(4);
INLINE_VALUE(8);
INLINE_VALUE(16);

MAP(svc4_hash_np, BPF_MAP_TYPE_HASH, struct lb4_key, struct svc_value_per_slot, CM_SERVICE_MAP_MAX_ENTRIES, BPF_F_NO_PREALLOC);
MAP(svc4_hash_pa, BPF_MAP_TYPE_HASH, struct lb4_key, struct svc_value_per_slot, CM_SERVICE_MAP_MAX_ENTRIES, 0);
MAP(svc4_inline4_pa, BPF_MAP_TYPE_HASH, struct lb4_key, struct svc_value_inline4, CM_SERVICE_MAP_MAX_ENTRIES, 0);
MAP(svc4_inline8_pa, BPF_MAP_TYPE_HASH, struct lb4_key, struct svc_value_inline8, CM_SERVICE_MAP_MAX_ENTRIES, 0);
MAP(svc4_inline16_pa, BPF_MAP_TYPE_HASH, struct lb4_key, struct svc_value_inline16, CM_SERVICE_MAP_MAX_ENTRIES, 0);
MAP(be4_hash_np, BPF_MAP_TYPE_HASH, __u32, struct lb4_backend, CM_BACKEND_MAP_MAX_ENTRIES, BPF_F_NO_PREALLOC);
MAP(be4_hash_pa, BPF_MAP_TYPE_HASH, __u32, struct lb4_backend, CM_BACKEND_MAP_MAX_ENTRIES, 0);
MAP(be4_array, BPF_MAP_TYPE_ARRAY, __u32, struct lb4_backend, CM_BACKEND_MAP_MAX_ENTRIES, 0);
MAP(be4_array_mmap, BPF_MAP_TYPE_ARRAY, __u32, struct lb4_backend, CM_BACKEND_MAP_MAX_ENTRIES, BPF_F_MMAPABLE);
MAP(rnat4_hash_np, BPF_MAP_TYPE_HASH, __u16, struct lb4_reverse_nat, CM_REV_NAT_MAP_MAX_ENTRIES, BPF_F_NO_PREALLOC);
MAP(rnat4_hash_pa, BPF_MAP_TYPE_HASH, __u16, struct lb4_reverse_nat, CM_REV_NAT_MAP_MAX_ENTRIES, 0);
MAP(rnat4_array, BPF_MAP_TYPE_ARRAY, __u32, struct lb4_reverse_nat, CM_REV_NAT_MAP_MAX_ENTRIES, 0);
MAP(rnat4_array_mmap, BPF_MAP_TYPE_ARRAY, __u32, struct lb4_reverse_nat, CM_REV_NAT_MAP_MAX_ENTRIES, BPF_F_MMAPABLE);

char LICENSE[] SEC("license") = "Dual BSD/GPL";
