/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  transform: { '^.+\\.ts$': 'ts-jest' },
  // The invariant checker (no leaked pins, locked_vm, refcounts, fds) runs after every test.
  setupFilesAfterEnv: ['<rootDir>/test/helpers/invariants-after-each.ts'],
};
