// Lint: type-aware rules for the whole project, and the workflow sandbox rules of docs/architecture.md#rules-of-the-code.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import { builtinModules } from 'node:module';

const nodeOnly = ['tsyringe', 'reflect-metadata', 'pg', 'ioredis', 'amqplib', 'ajv', 'pino', 'ulid'];
const builtins = builtinModules.flatMap((m) => [m, `node:${m}`]);

export default tseslint.config(
  { ignores: ['node_modules/', 'dist/', '.venv/', 'test-artifacts/', 'eslint.config.mjs'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-explicit-any': 'error',
      // Handlers are async by contract; one that happens not to await is fine.
      '@typescript-eslint/require-await': 'off',
      'no-restricted-properties': ['error', { object: 'process', property: 'env', message: 'Only shared/config reads process.env.' }],
    },
  },
  {
    // Tests pass the environment on to the processes they spawn.
    files: ['shared/config/**', 'test/**'],
    rules: { 'no-restricted-properties': 'off' },
  },
  {
    // Workflows run in Temporal's deterministic sandbox: no Node, no I/O, no DI.
    files: ['workflows/**/*.ts', 'shared/events/**/*.ts', 'shared/errors/**/*.ts', 'shared/saga.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: [...nodeOnly, ...builtins].map((name) => ({
            name,
            message: 'Workflow code (and shared/events, shared/errors) must stay free of Node-only modules.',
            allowTypeImports: true,
          })),
          patterns: [
            {
              group: ['../shared/*', '!../shared/events', '!../shared/errors', '!../shared/saga', '../../shared/*', '!../../shared/events', '!../../shared/errors', '!../../shared/saga'],
              message: 'Workflows may import only shared/events, shared/errors and shared/saga.',
              allowTypeImports: true,
            },
            { group: ['../activities/*', '!../activities/types'], message: 'Workflows import activity types only.', allowTypeImports: true },
          ],
        },
      ],
    },
  },
);
