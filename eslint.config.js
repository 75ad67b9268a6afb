import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['**/dist/**', '**/node_modules/**', 'coverage/**', 'bench/results/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports' }],
      'no-console': 'error',
    },
  },
  {
    files: ['bench/**', 'examples/**', 'packages/*/test/**'],
    rules: { 'no-console': 'off' },
  },
  {
    // Tests read parsed JSON answers loosely; production code may not.
    files: ['packages/*/test/**'],
    rules: { '@typescript-eslint/no-explicit-any': 'off' },
  },
);
