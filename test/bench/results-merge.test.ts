/** bench/all.ts: a subset run replaces its own benches in RESULTS.md and keeps the others. */
import { mergeRuns, parseKeptRuns, resultsMarkdown, type BenchRun } from '../../bench/all.js';

const run = (name: string, day: number, knobs: string[] = []): BenchRun => ({
  name,
  startedAt: new Date(Date.UTC(2026, 10, day, 8)),
  seconds: 10,
  load: [1.5, 2.5],
  knobs,
  result: {
    name,
    tables: [{ title: `${name} table of day ${day}`, notes: [], columns: ['a'], rows: [[day]] }],
    figures: [],
  },
});
const names = (runs: BenchRun[]) => runs.map((r) => `${r.name}@${r.startedAt.getUTCDate()}`);

describe('mergeRuns', () => {
  it.each([
    {
      what: 'nothing kept',
      kept: [],
      fresh: [run('mesh', 30), run('datapath', 30)],
      want: ['datapath@30', 'mesh@30'],
    },
    {
      what: 'a subset replaces its own',
      kept: [run('datapath', 29), run('agent', 29), run('mesh', 29)],
      fresh: [run('mesh', 30)],
      want: ['datapath@29', 'agent@29', 'mesh@30'],
    },
    {
      what: 'a full run replaces all',
      kept: [run('datapath', 29)],
      fresh: [run('datapath', 30), run('health', 30)],
      want: ['datapath@30', 'health@30'],
    },
  ])('$what', ({ kept, fresh, want }) => {
    expect(names(mergeRuns(kept, fresh))).toEqual(want);
  });

  it('reads back what main() keeps in results.json, dropping benches that no longer exist', () => {
    const text = JSON.stringify({ runs: [run('agent', 28), { ...run('gone', 28), name: 'gone' }] });
    const kept = parseKeptRuns(text);
    expect(names(kept)).toEqual(['agent@28']);
    expect(kept[0]!.startedAt).toBeInstanceOf(Date);
  });
});

describe('resultsMarkdown', () => {
  it('gives each section its own date, load and reduced sizes, and says which runs were reduced', () => {
    const md = resultsMarkdown(
      [run('datapath', 29), run('mesh', 30, ['BENCH_MESH_PEERS=32'])],
      { cores: 2, cpuModel: 'cpu', kernel: 'k', node: 'v20' },
      new Date(Date.UTC(2026, 10, 30)),
    );
    expect(md).toContain(
      'run 2026-11-29 08:00 UTC, took 10 s, load average 1.5 at its start and 2.5 at its end.',
    );
    expect(md).toContain(
      'run 2026-11-30 08:00 UTC, took 10 s, load average 1.5 at its start and 2.5 at its end; sizes reduced: BENCH_MESH_PEERS=32.',
    );
    expect(md).toContain('Sizes: **reduced** in mesh');
    expect(md).toContain('### datapath table of day 29');
  });
});
