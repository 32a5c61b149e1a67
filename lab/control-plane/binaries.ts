/**
 * Where the official upstream programs are: scripts/build-upstream.sh builds them from the
 * official Go modules at the versions pinned in upstream/versions.sh into a machine-wide cache,
 * and scripts/setup.sh links that directory as .tools/upstream. CLUSTERMESH_UPSTREAM_BIN points
 * at a directory of prebuilt official binaries instead.
 */
import { accessSync, constants } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UserError } from '../../lib/errors.js';

export type UpstreamProgram = 'etcd' | 'etcdctl' | 'kube-apiserver' | 'kube-controller-manager' | 'kube-scheduler';

/** The repository root, from dist/lab/control-plane/ or lab/control-plane/ (ts-jest). */
function repoRoot(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const up = here.includes(`${join('dist', 'lab')}`) ? '../../..' : '../..';
  return join(here, up);
}

export function upstreamBinDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.CLUSTERMESH_UPSTREAM_BIN || join(repoRoot(), '.tools', 'upstream');
}

/** The path of an upstream program, or a one-line error saying how to get it. */
export function upstreamBinary(program: UpstreamProgram, env: NodeJS.ProcessEnv = process.env): string {
  const path = join(upstreamBinDir(env), program);
  try {
    accessSync(path, constants.X_OK);
  } catch {
    throw new UserError(
      `${program} not found at ${path}: run 'npm run setup' (builds it from the official Go modules) or set CLUSTERMESH_UPSTREAM_BIN to a directory of official binaries`,
    );
  }
  return path;
}
