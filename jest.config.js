/** Tests run from TypeScript sources through swc; `npm test` type-checks and builds dist/ first,
 * because integration tests start the real CLI (dist/bin/sluice.js) as child processes. */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/tests'],
  testMatch: ['**/*.test.ts'],
  transform: { '^.+\\.ts$': ['@swc/jest', { jsc: { target: 'es2022' } }] },
  testTimeout: 60000,
  maxWorkers: 2,
};
