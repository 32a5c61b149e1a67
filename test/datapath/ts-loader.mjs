// Lets a child process run this package's TypeScript from source (as ts-jest does in tests):
// `node --import ./test/datapath/ts-loader.mjs child.ts`. Relative ".js" imports resolve to the
// ".ts" file next to them; .ts files are transpiled (no type check) with the package's compiler.
import { register } from 'node:module';

if (!globalThis.__clustermeshTsLoader) {
  globalThis.__clustermeshTsLoader = true;
  register('./ts-loader-hooks.mjs', import.meta.url);
}
