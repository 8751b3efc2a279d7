import js from '@eslint/js';
import tseslint from 'typescript-eslint';

// One public surface per folder: code outside a folder reaches it through its index.ts, so a
// folder can move its files around without breaking the others. Tests may import internals.
// For a file `depth` folders below src/, a path that climbs to src/ and then enters another
// folder anywhere but its index.js is refused (a nested folder's own index.js included).
const UP = ['\\./', '\\.\\./', '\\.\\./\\.\\./'];
const barrelOnly = (severity, depth) => ({
  'no-restricted-imports': [
    severity,
    {
      patterns: [
        {
          regex: `^${UP[depth]}[^./][^/]*/(?!index\\.js$)`,
          message: 'import another folder through its index.js',
        },
      ],
    },
  ],
});
const barrelConfigs = [
  { files: ['src/*.ts'], rules: barrelOnly('error', 0) },
  { files: ['src/*/*.ts'], rules: barrelOnly('error', 1) },
  { files: ['src/*/*/*.ts'], rules: barrelOnly('error', 2) },
];

export default tseslint.config(
  { ignores: ['node_modules/', 'dist/', '.tessera/', 'coverage/'] },
  js.configs.recommended,
  {
    files: ['**/*.ts'],
    extends: [...tseslint.configs.recommendedTypeChecked],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_' },
      ],
      'no-console': ['error', { allow: ['warn', 'error'] }],
      // Long or branchy functions are where the next change goes wrong: flagged, not forbidden.
      complexity: ['warn', 15],
      'max-lines-per-function': ['warn', { max: 80, skipBlankLines: true, skipComments: true }],
    },
  },
  {
    files: ['src/**/*.ts'],
    rules: { '@typescript-eslint/no-non-null-assertion': 'error' },
  },
  ...barrelConfigs,
  {
    files: ['test/**/*.ts'],
    rules: {
      // vitest callbacks and fixtures: length is the table of cases, not logic.
      'max-lines-per-function': 'off',
      complexity: 'off',
    },
  },
  {
    files: ['src/cli/**', 'bench/**', 'test/**', 'bin/**'],
    rules: { 'no-console': 'off' },
  },
  {
    files: ['bin/*.js', 'eslint.config.js'],
    languageOptions: { globals: { process: 'readonly', console: 'readonly' } },
  },
);
