/**
 * What every benchmark returns and how it is shown: tables (title, notes, columns, rows) as aligned
 * text for a terminal or as Markdown for RESULTS.md, headline figures beside the baseline they ran
 * with, the machine they ran on, the one percentile definition the benches share, and the env knobs
 * that shrink a run. Everything here is pure except `machineInfo` and `runStandalone`.
 */
import { cpus, release } from 'node:os';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export type Cell = string | number;

export interface Table {
  title: string;
  /** lines printed under the title: what was measured, units, sizes */
  notes: string[];
  columns: string[];
  rows: Cell[][];
}

/** One headline number; `ratio` = value / baseline value (same unit). */
export interface Figure {
  /** stable key: the summary against DESIGN §8 looks figures up by it */
  id: string;
  what: string;
  value: number;
  unit: string;
  /** `atLeast`: the baseline never finished, its value is a lower bound (so the ratio is an upper one) */
  baseline?: { what: string; value: number; atLeast?: boolean };
  ratio?: number;
  /** the size it was measured at, where a target names one (services) */
  size?: number;
}

export interface BenchResult {
  name: string;
  tables: Table[];
  figures: Figure[];
}

export function figure(id: string, what: string, value: number, unit: string, baseline?: Figure['baseline']): Figure {
  if (!baseline) return { id, what, value, unit };
  // a zero baseline (0 failed requests) has no meaningful ratio
  return baseline.value === 0 ? { id, what, value, unit, baseline } : { id, what, value, unit, baseline, ratio: value / baseline.value };
}

/** Nearest-rank percentile (p in 0..100) of unsorted samples. */
export function percentile(samples: readonly number[], p: number): number {
  if (samples.length === 0) throw new Error('percentile of no samples');
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

export interface Distribution {
  n: number;
  min: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
}

export function distribution(samples: readonly number[]): Distribution {
  const at = (p: number) => percentile(samples, p);
  return { n: samples.length, min: at(0), p50: at(50), p95: at(95), p99: at(99), max: at(100) };
}

/** A column is right-aligned when every one of its cells is a number or starts with one. */
function numericColumns(table: Table): boolean[] {
  return table.columns.map((_, i) => table.rows.length > 0 && table.rows.every((row) => typeof row[i] === 'number' || /^[<>≤≈~-]?\s?\d/.test(String(row[i]))));
}

function cellTexts(table: Table): string[][] {
  return [table.columns, ...table.rows.map((row) => table.columns.map((_, i) => String(row[i] ?? '')))];
}

/** Aligned columns for a terminal. */
export function formatText(table: Table): string {
  const lines = cellTexts(table);
  const right = numericColumns(table);
  const widths = table.columns.map((_, i) => Math.max(...lines.map((l) => l[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => (right[i] ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join('  ').trimEnd();
  return [table.title, ...table.notes.map((n) => `  ${n}`), '', line(lines[0]), widths.map((w) => '-'.repeat(w)).join('  '), ...lines.slice(1).map(line)].join('\n');
}

const escapeMarkdown = (cell: string) => cell.replace(/\|/g, '\\|');

/** A Markdown section: the title as a heading of `level`, the notes, then the table. */
export function formatMarkdown(table: Table, level = 3): string {
  const [head, ...body] = cellTexts(table);
  const right = numericColumns(table);
  const row = (cells: string[]) => `| ${cells.map(escapeMarkdown).join(' | ')} |`;
  return [
    `${'#'.repeat(level)} ${table.title}`,
    '',
    ...(table.notes.length > 0 ? [...table.notes, ''] : []),
    row(head),
    `|${right.map((r) => (r ? '---:' : '---')).join('|')}|`,
    ...body.map(row),
  ].join('\n');
}

export interface MachineInfo {
  cores: number;
  cpuModel: string;
  /** what `uname -r` prints */
  kernel: string;
  node: string;
}

export function machineInfo(): MachineInfo {
  const cpu = cpus();
  return { cores: cpu.length, cpuModel: cpu[0]?.model.trim() ?? 'unknown', kernel: release(), node: process.version };
}

export function describeMachine(m: MachineInfo): string {
  return `${m.cores} cores (${m.cpuModel}), kernel ${m.kernel}, Node ${m.node}`;
}

function positiveInt(name: string, raw: string): number {
  const value = Number(raw);
  if (!Number.isInteger(value) || value <= 0) throw new Error(`${name}=${raw} is not a positive integer: unset it or give a count`);
  return value;
}

/** A positive integer from the environment (a knob that shrinks a run), or the default. */
export function envInt(name: string, fallback: number, env: NodeJS.ProcessEnv = process.env): number {
  const raw = env[name];
  return raw === undefined || raw === '' ? fallback : positiveInt(name, raw);
}

/** A comma-separated list of positive integers from the environment, or the default. */
export function envInts(name: string, fallback: number[], env: NodeJS.ProcessEnv = process.env): number[] {
  const raw = env[name];
  return raw === undefined || raw === '' ? fallback : raw.split(',').map((part) => positiveInt(name, part.trim()));
}

/** Whether the module at `moduleUrl` is the program node was started with. */
export function isEntryPoint(moduleUrl: string): boolean {
  return Boolean(process.argv[1]) && resolve(process.argv[1]!) === fileURLToPath(moduleUrl);
}

/**
 * When the module at `moduleUrl` is the program node was started with (`node dist/bench/x.js`),
 * runs the bench and prints its tables; when all.ts imports it, does nothing.
 */
export function runStandalone(moduleUrl: string, run: () => Promise<BenchResult>): void {
  if (!isEntryPoint(moduleUrl)) return;
  run().then(
    (result) => process.stdout.write(`${describeMachine(machineInfo())}\n\n${result.tables.map(formatText).join('\n\n')}\n`),
    (error: Error) => {
      process.stderr.write(`bench: ${error.message}\n`);
      process.exitCode = 1;
    },
  );
}
