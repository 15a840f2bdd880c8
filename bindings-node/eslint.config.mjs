// ESLint (flat config): the recommended rules over every JS file of the package.
import js from '@eslint/js';
import globals from 'globals';

export default [
  { ignores: ['node_modules/', 'test/.readme-*.mjs'] },
  js.configs.recommended,
  {
    files: ['**/*.js'],
    languageOptions: { sourceType: 'commonjs', ecmaVersion: 2023, globals: { ...globals.node } },
  },
  {
    files: ['**/*.mjs'],
    languageOptions: { sourceType: 'module', ecmaVersion: 2023, globals: { ...globals.node } },
  },
  { rules: { 'no-unused-vars': ['error', { argsIgnorePattern: '^_|^next$|^req$|^res$|^request$|^reply$' }] } },
];
