/**
 * The "restarted agent" of restart.test.ts, as a separate process: reopens the pinned maps,
 * reconciles the desired state it is given on stdin, re-attaches, and prints what it did.
 * Run: node --import ./test/datapath/ts-loader.mjs test/datapath/reopen-child.ts PIN_DIR CGROUP_DIR
 */
import { readFileSync } from 'node:fs';
import { Datapath, type DatapathService } from '../../lib/datapath/index.js';

const [pinDir, cgroupDir] = process.argv.slice(2);
const desired = JSON.parse(readFileSync(0, 'utf8')) as DatapathService[];
const dp = await Datapath.open({ pinDir });
try {
  const before = dp.dump();
  const stats = dp.reconcile(desired);
  dp.attach(cgroupDir);
  process.stdout.write(JSON.stringify({ before, stats }));
} finally {
  dp.close();
}
