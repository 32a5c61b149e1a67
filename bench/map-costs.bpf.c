// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Map variants for bench/map-costs.ts: the service, backend and reverse-NAT maps of
 * bpf/sock_lb.c (same key and value structs, same capacities), each in every kind and flag the
 * bench compares. No programs: only the maps are created (unpinned, freed when the bench
 * closes the object).
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

MAP(svc4_hash_np, BPF_MAP_TYPE_HASH, struct lb4_key, struct lb4_service, CM_SERVICE_MAP_MAX_ENTRIES, BPF_F_NO_PREALLOC);
MAP(svc4_hash_pa, BPF_MAP_TYPE_HASH, struct lb4_key, struct lb4_service, CM_SERVICE_MAP_MAX_ENTRIES, 0);
MAP(be4_hash_np, BPF_MAP_TYPE_HASH, __u32, struct lb4_backend, CM_BACKEND_MAP_MAX_ENTRIES, BPF_F_NO_PREALLOC);
MAP(be4_hash_pa, BPF_MAP_TYPE_HASH, __u32, struct lb4_backend, CM_BACKEND_MAP_MAX_ENTRIES, 0);
MAP(be4_array, BPF_MAP_TYPE_ARRAY, __u32, struct lb4_backend, CM_BACKEND_MAP_MAX_ENTRIES, 0);
MAP(rnat4_hash_np, BPF_MAP_TYPE_HASH, __u16, struct lb4_reverse_nat, CM_REV_NAT_MAP_MAX_ENTRIES, BPF_F_NO_PREALLOC);
MAP(rnat4_hash_pa, BPF_MAP_TYPE_HASH, __u16, struct lb4_reverse_nat, CM_REV_NAT_MAP_MAX_ENTRIES, 0);
MAP(rnat4_array, BPF_MAP_TYPE_ARRAY, __u32, struct lb4_reverse_nat, CM_REV_NAT_MAP_MAX_ENTRIES, 0);

char LICENSE[] SEC("license") = "Dual BSD/GPL";
