import { startAll } from './start-all.js';

/** A server double that records whether it was stopped (by `stop` or by `close`). */
function server(name: string, stopped: string[], via: 'stop' | 'close') {
  const down = async () => {
    stopped.push(name);
  };
  return via === 'stop' ? { name, stop: down } : { name, close: down };
}

describe('startAll', () => {
  it('returns every server in the order of its starter', async () => {
    const stopped: string[] = [];
    const [a, b] = await startAll(
      async () => server('a', stopped, 'stop'),
      async () => server('b', stopped, 'close'),
    );
    expect([a.name, b.name]).toEqual(['a', 'b']);
    expect(stopped).toEqual([]);
  });

  it('stops the servers that started when another fails, then throws its error', async () => {
    const stopped: string[] = [];
    const failure = new Error('bind: address already in use');
    await expect(
      startAll(
        async () => server('etcd', stopped, 'stop'),
        async () => {
          throw failure;
        },
        async () => server('kube-apiserver', stopped, 'close'),
      ),
    ).rejects.toBe(failure);
    expect(stopped.sort()).toEqual(['etcd', 'kube-apiserver']);
  });

  it('throws the start error even when stopping a started server fails too', async () => {
    const failure = new Error('start failed');
    await expect(
      startAll(
        async () => ({ stop: () => Promise.reject(new Error('stop failed')) }),
        () => Promise.reject(failure),
      ),
    ).rejects.toBe(failure);
  });
});
