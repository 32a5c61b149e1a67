/**
 * The lab kubelet's image catalog: the lab has no container runtime and no registry, so an image
 * is a name for a program already on this machine. Pure.
 *   - the project's image (the chart's `image.repository`, any tag): its command runs against the
 *     built tree, which is bind-mounted at the image's /opt/clustermesh (deploy/Dockerfile);
 *   - the etcd image (registry.k8s.io/etcd): /usr/local/bin/etcd is the etcd built by
 *     scripts/build-upstream.sh;
 *   - the lab's echo image: lab/workloads/echo-server.ts;
 *   - anything else is not runnable, with a reason the pod's status and events show.
 */
import { dirname, join } from 'node:path';

export const ECHO_IMAGE = 'clustermesh.io/lab-echo';
export const ETCD_REPOSITORY = 'registry.k8s.io/etcd';
/** deploy/Dockerfile: the tree lives at /opt/clustermesh (dist/ and node_modules/), ENTRYPOINT node */
export const PROJECT_IMAGE_ROOT = '/opt/clustermesh';
const ETCD_IMAGE_BINARY = '/usr/local/bin/etcd';

export interface ImageCatalog {
  /** the repository the chart's pods use for the project's image (values.yaml image.repository) */
  projectRepository: string;
  /** the built tree's dist/ directory; its parent also holds node_modules/ */
  distDir: string;
  /** the official etcd binary; absent = the etcd image is not runnable */
  etcdBinary?: string;
}

export interface BindMount {
  source: string;
  target: string;
  readOnly: boolean;
}

export type ImageRun =
  | { runnable: true; argv: string[]; workingDir: string; binds: BindMount[] }
  | { runnable: false; reason: 'ImageNotRunnable'; message: string };

/** What a pod asks of an image: the container's command/args (already $(VAR)-expanded) and workingDir. */
export interface ContainerInvocation {
  image: string;
  command?: string[];
  args?: string[];
  workingDir?: string;
  /** the echo image's default identity (`<cluster>/<pod>`, what lab/workloads/echo-server.ts prints) */
  echoIdentity: string;
}

/** `registry:5000/a/b:tag@sha256:…` → `registry:5000/a/b` (a port's colon is not a tag). */
export function imageRepository(image: string): string {
  const withoutDigest = image.split('@')[0];
  const lastSlash = withoutDigest.lastIndexOf('/');
  const lastColon = withoutDigest.lastIndexOf(':');
  return lastColon > lastSlash ? withoutDigest.slice(0, lastColon) : withoutDigest;
}

/** Docker's rule: `command` replaces the entrypoint (and drops the image's CMD); `args` replaces CMD. */
function dockerArgv(entrypoint: string[], cmd: string[], inv: ContainerInvocation): string[] {
  if (inv.command?.length) return [...inv.command, ...(inv.args ?? [])];
  return [...entrypoint, ...(inv.args?.length ? inv.args : cmd)];
}

export function imageRun(inv: ContainerInvocation, catalog: ImageCatalog): ImageRun {
  const repository = imageRepository(inv.image);
  const treeBind: BindMount = { source: dirname(catalog.distDir), target: PROJECT_IMAGE_ROOT, readOnly: true };
  if (repository === catalog.projectRepository || repository.endsWith(`/${catalog.projectRepository}`)) {
    const argv = dockerArgv(['node'], ['dist/clustermesh-apiserver/main.js', '--help'], inv);
    return { runnable: true, argv, workingDir: inv.workingDir ?? PROJECT_IMAGE_ROOT, binds: [treeBind] };
  }
  if (repository === ETCD_REPOSITORY) {
    if (!catalog.etcdBinary) {
      return {
        runnable: false,
        reason: 'ImageNotRunnable',
        message: `image ${inv.image} needs the built etcd: start the lab kubelet with --etcd-binary`,
      };
    }
    const argv = dockerArgv([ETCD_IMAGE_BINARY], [], inv);
    if (argv[0] === ETCD_IMAGE_BINARY) argv[0] = catalog.etcdBinary;
    return { runnable: true, argv, workingDir: inv.workingDir ?? '/', binds: [] };
  }
  if (repository === ECHO_IMAGE) {
    const server = join(catalog.distDir, 'lab', 'workloads', 'echo-server.js');
    const argv = dockerArgv(['node', server], ['--identity', inv.echoIdentity], inv);
    return { runnable: true, argv, workingDir: inv.workingDir ?? '/', binds: [treeBind] };
  }
  return {
    runnable: false,
    reason: 'ImageNotRunnable',
    message:
      `the lab kubelet has no container runtime and runs only the images ${catalog.projectRepository}:*, ` +
      `${ETCD_REPOSITORY}:* and ${ECHO_IMAGE}:*, not ${inv.image}`,
  };
}
