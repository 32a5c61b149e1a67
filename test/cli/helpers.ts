/** Drives the built CLI as a user would: a spawned `node dist/cli/main.js …` with real arguments. */
import { spawn } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import type { KubeApiServer } from '../harness/kube-apiserver.js';
import { builtRequirement, type Requirement } from '../harness/requirements.js';

export const ROOT = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '..', '..');
export const CLI = join(ROOT, 'dist', 'cli', 'main.js');

export function cliBuiltRequirement(): Requirement {
  return builtRequirement(join(ROOT, 'dist'), ['cli/main.js']);
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Async: the test goes on serving (agent status servers, the API servers' fixtures) while the CLI runs. */
export function runCli(args: string[], timeoutMs = 60_000): Promise<CliResult> {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run npx tsc -p tsconfig.json first`);
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NODE_OPTIONS: '' } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** One kubeconfig with a context per server (named as given). */
export function writeKubeconfig(path: string, servers: Record<string, KubeApiServer>): void {
  const configs = Object.entries(servers).map(([name, server]) => parse(server.kubeconfig(name)));
  writeFileSync(
    path,
    stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: configs.flatMap((c) => c.clusters),
      users: configs.flatMap((c) => c.users),
      contexts: configs.flatMap((c) => c.contexts),
      'current-context': Object.keys(servers)[0],
    }),
  );
}

/** The error lines a failed command printed (warnings of Node itself excluded). */
export function errorLines(result: CliResult): string[] {
  return result.stderr.split('\n').filter((l) => l.trim() && !/^\(node:\d+\)|--trace-warnings/.test(l));
}
