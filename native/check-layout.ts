/**
 * Fails the build when lib/datapath/codecs.ts and bpf/clustermesh.h disagree on any struct size,
 * field offset or named constant (run after the addon is built: `node dist/native/check-layout.js`).
 */
import { layoutDrift } from '../lib/datapath/layout-drift.js';
import { loadNative } from './index.js';

const native = loadNative();
const drift = layoutDrift(native.layouts(), native.constants());
if (drift.length > 0) {
  process.stderr.write(`map layouts drifted between bpf/clustermesh.h and lib/datapath/codecs.ts:\n  ${drift.join('\n  ')}\n`);
  process.exit(1);
}
