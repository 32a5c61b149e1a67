import type { L4Protocol } from '../../lib/kvstore/types.js';

/**
 * A Kubernetes port protocol as the wire's L4 protocol: absent means TCP (the API default);
 * SCTP and anything else have no wire form here and yield `null`.
 */
export function toL4Protocol(protocol: string | undefined): L4Protocol | null {
  const value = protocol ?? 'TCP';
  return value === 'TCP' || value === 'UDP' ? value : null;
}
