/**
 * The lab kubelet's volume role: projects one Secret into a directory, as a kubelet does for a
 * Secret volume (each key a file, written atomically; keys that disappear are removed).
 *   node dist/lab/cluster/kubelet.js --kubeconfig F --namespace NS --secret NAME --dir DIR
 */
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command } from 'commander';
import { labApi } from './api.js';

const SYNC_PERIOD_MS = 200;

/** Which files to write and which to remove so the directory equals `data`. Pure. */
export function projectionChanges(
  data: Record<string, string>,
  current: Record<string, string>,
): { write: string[]; remove: string[] } {
  return {
    write: Object.keys(data).filter((key) => current[key] !== data[key]),
    remove: Object.keys(current).filter((key) => !(key in data)),
  };
}

function readDir(dir: string): Record<string, string> {
  return Object.fromEntries(
    readdirSync(dir)
      .filter((f) => !f.startsWith('.'))
      .map((f) => [f, readFileSync(join(dir, f), 'utf8')]),
  );
}

function apply(dir: string, data: Record<string, string>): void {
  const changes = projectionChanges(data, readDir(dir));
  for (const key of changes.write) {
    const tmp = join(dir, `.${key}.tmp`);
    writeFileSync(tmp, data[key], { mode: 0o600 });
    renameSync(tmp, join(dir, key));
  }
  for (const key of changes.remove) rmSync(join(dir, key), { force: true });
  if (changes.write.length + changes.remove.length > 0)
    console.log(`${new Date().toISOString()} synced ${dir}: wrote ${changes.write.join(',') || '-'} removed ${changes.remove.join(',') || '-'}`);
}

async function main(): Promise<void> {
  const opts = new Command('lab-kubelet')
    .requiredOption('--kubeconfig <file>')
    .requiredOption('--namespace <ns>')
    .requiredOption('--secret <name>')
    .requiredOption('--dir <dir>')
    .parse(process.argv)
    .opts<{ kubeconfig: string; namespace: string; secret: string; dir: string }>();
  mkdirSync(opts.dir, { recursive: true });
  const api = labApi(opts.kubeconfig);
  let lastVersion: string | undefined = '';
  let stopping = false;
  process.once('SIGTERM', () => (stopping = true));
  console.log(`lab kubelet projecting secret ${opts.namespace}/${opts.secret} into ${opts.dir}`);
  while (!stopping) {
    try {
      const secret = (await api.objects.read({
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: { name: opts.secret, namespace: opts.namespace },
      })) as { metadata?: { resourceVersion?: string }; data?: Record<string, string> };
      if (secret.metadata?.resourceVersion !== lastVersion) {
        const data = Object.fromEntries(Object.entries(secret.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64').toString()]));
        apply(opts.dir, data);
        lastVersion = secret.metadata?.resourceVersion;
      }
    } catch (err) {
      if ((err as { code?: number }).code === 404) {
        if (lastVersion !== undefined) apply(opts.dir, {});
        lastVersion = undefined;
      } else console.error(`lab kubelet: ${(err as Error).message.split('\n')[0]}`);
    }
    await new Promise((resolve) => setTimeout(resolve, SYNC_PERIOD_MS));
  }
}

if (process.argv[1]?.endsWith('kubelet.js')) void main();
