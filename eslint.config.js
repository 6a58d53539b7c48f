import js from '@eslint/js';
import tseslint from 'typescript-eslint';

// Service boundaries: router, node-agent and control-plane share only common/ and proto/ (which
// import no service); cli/ and test/ may import anything. A forbidden import fails `npm run lint`
// (test/unit/house/boundaries.test.ts proves it).
const boundary = (dir, forbidden) => ({
  files: [`${dir}/**/*.ts`],
  rules: {
    'no-restricted-imports': [
      'error',
      {
        patterns: [
          {
            regex: `^(\\.\\./)+(${forbidden.join('|')})/`,
            message: `${dir}/ may not import ${forbidden.join(', ')}: services share only common/ and proto/ (move what is shared into common/).`,
          },
        ],
      },
    ],
  },
});

export default tseslint.config(
  { ignores: ['node_modules/**', 'dist/**', 'proto/generated/**', 'bench-results/**', 'chaos-results/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      globals: {
        process: 'readonly',
        console: 'readonly',
        setTimeout: 'readonly',
        clearTimeout: 'readonly',
        setInterval: 'readonly',
        clearInterval: 'readonly',
        Buffer: 'readonly',
        URL: 'readonly',
        AbortController: 'readonly',
        AbortSignal: 'readonly',
        TextEncoder: 'readonly',
        TextDecoder: 'readonly',
        fetch: 'readonly',
        performance: 'readonly',
        setImmediate: 'readonly',
        structuredClone: 'readonly',
      },
    },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
      '@typescript-eslint/no-explicit-any': 'error',
      'no-console': 'off',
    },
  },
  {
    // Type-aware rules: a promise nobody awaits loses its rejection (an unhandled rejection ends the
    // process) and its ordering. Fire-and-forget is written `void p` with the reason beside it.
    files: ['**/*.ts'],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      // node:test's describe/it return promises the runner itself tracks.
      '@typescript-eslint/no-floating-promises': [
        'error',
        {
          allowForKnownSafeCalls: [
            {
              from: 'package',
              package: 'node:test',
              name: ['describe', 'it', 'test', 'suite', 'before', 'after', 'beforeEach', 'afterEach'],
            },
          ],
        },
      ],
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/await-thenable': 'error',
    },
  },
  boundary('router', ['control-plane', 'node-agent', 'cli', 'test']),
  boundary('node-agent', ['router', 'control-plane', 'cli', 'test']),
  boundary('control-plane', ['router', 'node-agent', 'cli', 'test']),
  boundary('common', ['router', 'node-agent', 'control-plane', 'cli', 'test']),
  boundary('proto', ['router', 'node-agent', 'control-plane', 'cli', 'test']),
);
