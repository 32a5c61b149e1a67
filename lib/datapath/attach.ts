/**
 * Which programs to attach, replace or detach on a cgroup: a pure decision, so that attaching is
 * idempotent across restarts (a restarted agent loads new program instances and swaps them in
 * place of its predecessor's, never stacking a second copy on the hook).
 */
export interface AttachedProgram {
  id: number;
  name: string;
}

/** Our programs (names as in bpf/sock_lb.c) and the cgroup hook each belongs to (addon constant). */
export const PROGRAM_HOOKS = {
  cm_connect4: 'BPF_CGROUP_INET4_CONNECT',
  cm_connect6: 'BPF_CGROUP_INET6_CONNECT',
  cm_sendmsg4: 'BPF_CGROUP_UDP4_SENDMSG',
  cm_sendmsg6: 'BPF_CGROUP_UDP6_SENDMSG',
  cm_recvmsg4: 'BPF_CGROUP_UDP4_RECVMSG',
  cm_recvmsg6: 'BPF_CGROUP_UDP6_RECVMSG',
  cm_getpeername4: 'BPF_CGROUP_INET4_GETPEERNAME',
  cm_getpeername6: 'BPF_CGROUP_INET6_GETPEERNAME',
} as const;

export type ProgramName = keyof typeof PROGRAM_HOOKS;

export interface AttachPlan {
  /** false: ours is already there */
  attach: boolean;
  /** a predecessor to swap out atomically (0: none) */
  replaceId: number;
  /** further copies of our program to remove */
  detachIds: number[];
}

export function planAttach(ours: AttachedProgram, attached: readonly AttachedProgram[]): AttachPlan {
  const sameName = attached.filter((p) => p.name === ours.name);
  if (sameName.some((p) => p.id === ours.id)) {
    return { attach: false, replaceId: 0, detachIds: sameName.filter((p) => p.id !== ours.id).map((p) => p.id) };
  }
  const [predecessor, ...extra] = sameName;
  return { attach: true, replaceId: predecessor?.id ?? 0, detachIds: extra.map((p) => p.id) };
}

/** Every copy of our programs on a hook, whoever loaded them. */
export function ourPrograms(name: ProgramName, attached: readonly AttachedProgram[]): number[] {
  return attached.filter((p) => p.name === name).map((p) => p.id);
}
