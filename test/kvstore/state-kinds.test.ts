/** Where each imported kind is read, directly or from the kvstoremesh cache: Cilium's layout, as tables. */
import { stateToCachePrefix } from '../../lib/kvstore/keys.js';
import { STATE_KINDS, cacheKeyOf, stateSource, type StateKind } from '../../lib/kvstore/state-kinds.js';

// Cilium's KVStoreMesh: cilium/state/<kind>/v1/... of cluster "east" → cilium/cache/<kind>/v1/east/...
const LAYOUT: Array<[StateKind, string, string, string]> = [
  [
    'services',
    'cilium/state/services/v1/east/default/echo',
    'cilium/cache/services/v1/east/default/echo',
    'cilium/synced/east/cilium/cache/services/v1',
  ],
  [
    'nodes',
    'cilium/state/nodes/v1/east/worker-1',
    'cilium/cache/nodes/v1/east/worker-1',
    'cilium/synced/east/cilium/cache/nodes/v1',
  ],
  [
    'identities',
    'cilium/state/identities/v1/id/131073',
    'cilium/cache/identities/v1/east/id/131073',
    'cilium/synced/east/cilium/cache/identities/v1',
  ],
  [
    'ipcache',
    'cilium/state/ip/v1/default/10.102.1.7',
    'cilium/cache/ip/v1/east/10.102.1.7',
    'cilium/synced/east/cilium/cache/ip/v1',
  ],
  [
    'ipcache',
    'cilium/state/ip/v1/default/fd99:102::7/128',
    'cilium/cache/ip/v1/east/fd99:102::7/128',
    'cilium/synced/east/cilium/cache/ip/v1',
  ],
];

test.each(LAYOUT)('%s: %s is cached as %s', (kind, stateKey, cacheKey, canary) => {
  expect(cacheKeyOf(kind, 'east', stateKey)).toBe(cacheKey);
  const cached = stateSource(kind, 'east', true);
  expect(cacheKey.startsWith(cached.prefix)).toBe(true);
  expect(cached.toStateKey(cacheKey)).toBe(stateKey);
  expect(cached.canaryKey).toBe(canary);
});

test.each(STATE_KINDS)('%s read directly: the peer prefix, its own canary, keys as they are', (kind) => {
  const direct = stateSource(kind, 'east', false);
  expect(direct.prefix.startsWith('cilium/state/')).toBe(true);
  expect(direct.canaryKey).toMatch(/^cilium\/synced\/east\/cilium\/state\/[a-z]+\/v1$/);
  expect(direct.toStateKey(`${direct.prefix}x`)).toBe(`${direct.prefix}x`);
});

test('the cache of one peer never covers another peer, nor a state key outside the prefix', () => {
  for (const kind of STATE_KINDS) {
    expect(stateSource(kind, 'east', true).prefix).not.toBe(stateSource(kind, 'eastern', true).prefix);
    expect(stateSource(kind, 'eastern', true).prefix.startsWith(stateSource(kind, 'east', true).prefix)).toBe(
      false,
    );
  }
  expect(() => cacheKeyOf('services', 'east', 'cilium/state/services/v1/west/default/echo')).toThrow(
    /is not under/,
  );
  expect(() => stateToCachePrefix('cilium/synced/east')).toThrow(/is not under cilium\/state\//);
});
