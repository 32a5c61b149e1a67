import { ECHO_IMAGE, type ImageCatalog, imageRepository, imageRun } from '../../lab/kubelet/images.js';

const catalog: ImageCatalog = { projectRepository: 'clustermesh', distDir: '/repo/dist', etcdBinary: '/cache/etcd' };
const tree = { source: '/repo', target: '/opt/clustermesh', readOnly: true };

describe('imageRepository', () => {
  it.each([
    ['clustermesh', 'clustermesh'],
    ['clustermesh:0.1.0', 'clustermesh'],
    ['ghcr.io/acme/clustermesh:v1', 'ghcr.io/acme/clustermesh'],
    ['localhost:5000/clustermesh', 'localhost:5000/clustermesh'],
    ['localhost:5000/clustermesh:dev', 'localhost:5000/clustermesh'],
    ['registry.k8s.io/etcd:3.5.21-0@sha256:abcd', 'registry.k8s.io/etcd'],
  ])('%s → %s', (image, repository) => expect(imageRepository(image)).toBe(repository));
});

describe('imageRun', () => {
  it.each([
    {
      what: "the chart's agent: command from the built tree",
      inv: { image: 'clustermesh:0.1.0', command: ['node', '/opt/clustermesh/dist/agent/main.js'], args: ['--node-name=w1'] },
      run: { runnable: true, argv: ['node', '/opt/clustermesh/dist/agent/main.js', '--node-name=w1'], workingDir: '/opt/clustermesh', binds: [tree] },
    },
    {
      what: 'the project image under another registry, args only: the image entrypoint node',
      inv: { image: 'ghcr.io/x/clustermesh:v2', args: ['dist/cli/main.js', 'version'] },
      run: { runnable: true, argv: ['node', 'dist/cli/main.js', 'version'], workingDir: '/opt/clustermesh', binds: [tree] },
    },
    {
      what: 'the project image, nothing given: the image CMD',
      inv: { image: 'clustermesh' },
      run: { runnable: true, argv: ['node', 'dist/clustermesh-apiserver/main.js', '--help'], workingDir: '/opt/clustermesh', binds: [tree] },
    },
    {
      what: "the chart's etcd sidecar: the built etcd",
      inv: { image: 'registry.k8s.io/etcd:3.5.21-0', command: ['/usr/local/bin/etcd'], args: ['--name=x'] },
      run: { runnable: true, argv: ['/cache/etcd', '--name=x'], workingDir: '/', binds: [] },
    },
    {
      what: 'the echo image without args: its identity is cluster/pod',
      inv: { image: `${ECHO_IMAGE}:latest` },
      run: { runnable: true, argv: ['node', '/repo/dist/lab/workloads/echo-server.js', '--identity', 'east/web-1'], workingDir: '/', binds: [tree] },
    },
    {
      what: 'the echo image with args',
      inv: { image: ECHO_IMAGE, args: ['--identity', 'x/y', '--port', '9090'] },
      run: { runnable: true, argv: ['node', '/repo/dist/lab/workloads/echo-server.js', '--identity', 'x/y', '--port', '9090'], workingDir: '/', binds: [tree] },
    },
    {
      what: 'workingDir is honoured',
      inv: { image: ECHO_IMAGE, workingDir: '/tmp' },
      run: { runnable: true, argv: ['node', '/repo/dist/lab/workloads/echo-server.js', '--identity', 'east/web-1'], workingDir: '/tmp', binds: [tree] },
    },
  ])('$what', ({ inv, run }) => {
    expect(imageRun({ echoIdentity: 'east/web-1', ...inv }, catalog)).toEqual(run);
  });

  it.each([
    ['nginx', /not nginx/],
    ['docker.io/library/nginx:1.27', /not docker.io\/library\/nginx:1.27/],
    ['clustermesh-other', /clustermesh:\*/],
  ])('%s is not runnable, with a message naming what is', (image, message) => {
    const run = imageRun({ image, echoIdentity: 'e/p' }, catalog);
    expect(run).toEqual({ runnable: false, reason: 'ImageNotRunnable', message: expect.stringMatching(message) });
  });

  it('the etcd image without --etcd-binary says which flag is missing', () => {
    const run = imageRun({ image: 'registry.k8s.io/etcd:3.6.0', echoIdentity: 'e/p' }, { ...catalog, etcdBinary: undefined });
    expect(run).toEqual({ runnable: false, reason: 'ImageNotRunnable', message: expect.stringContaining('--etcd-binary') });
  });
});
