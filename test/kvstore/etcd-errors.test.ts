import { EtcdAuthenticationFailedError, EtcdPermissionDeniedError, GRPCUnavailableError } from 'etcd3';
import { classifyEtcdError, loadEtcdClientConfig } from '../../lib/kvstore/etcd.js';

const ENDPOINTS = ['https://10.99.0.10:2379'];

describe('classifyEtcdError', () => {
  it.each([
    [new EtcdPermissionDeniedError('etcdserver: permission denied'), 'permission-denied'],
    [
      new EtcdAuthenticationFailedError('etcdserver: authentication failed, invalid user ID or password'),
      'auth',
    ],
    [
      new GRPCUnavailableError(
        '14 UNAVAILABLE: No connection established. Last error: connect ECONNREFUSED 10.99.0.10:2379',
      ),
      'unreachable',
    ],
    [
      new GRPCUnavailableError(
        '14 UNAVAILABLE: No connection established. Last error: ssl3_read_bytes:sslv3 alert bad certificate:SSL alert number 42',
      ),
      'tls',
    ],
    [
      new GRPCUnavailableError('14 UNAVAILABLE: No connection established. Last error: SSL alert number 45'),
      'tls',
    ],
    [
      new GRPCUnavailableError(
        '14 UNAVAILABLE: No connection established. Last error: Error: unable to verify the first certificate',
      ),
      'tls',
    ],
    [new GRPCUnavailableError("14 UNAVAILABLE: Hostname/IP does not match certificate's altnames"), 'tls'],
    [new Error('4 DEADLINE_EXCEEDED: Deadline exceeded'), 'timeout'],
    [new Error('something else entirely'), 'other'],
  ])('%s → %s', (err, kind) => {
    const failure = classifyEtcdError(err, ENDPOINTS);
    expect(failure.kind).toBe(kind);
    expect(failure.message).toMatch(/^(etcd at|TLS with etcd at) https:\/\/10\.99\.0\.10:2379 /);
    expect(failure.message).not.toContain('\n');
  });
});

describe('loadEtcdClientConfig', () => {
  it('names the file it cannot read', () => {
    expect(() =>
      loadEtcdClientConfig({
        endpoints: ENDPOINTS,
        caFile: '/nonexistent/ca.crt',
        certFile: '/x',
        keyFile: '/y',
      }),
    ).toThrow('etcd: cannot read the CA file /nonexistent/ca.crt (ENOENT)');
  });
});
