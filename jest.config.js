/** ESM + TypeScript through ts-jest (see MACHINE-NOTES for why each setting is here). */
export default {
  preset: 'ts-jest/presets/default-esm',
  testEnvironment: 'node',
  extensionsToTreatAsEsm: ['.ts'],
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  transform: { '^.+\\.ts$': ['ts-jest', { useESM: true, tsconfig: 'tsconfig.test.json' }] },
  testMatch: ['<rootDir>/test/**/*.test.ts', '<rootDir>/e2e/**/*.test.ts'],
  testTimeout: 60000,
  maxWorkers: 2,
  // the whole-cluster suites first, one at a time (test/harness/cluster-suites-first.js)
  testSequencer: '<rootDir>/test/harness/cluster-suites-first.js',
};
