// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'coverage/**', 'src/api/schedule-validator.generated.ts'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/switch-exhaustiveness-check': [
        'error',
        { considerDefaultExhaustiveForUnions: true },
      ],
      '@typescript-eslint/require-await': 'off',
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
    },
  },
  {
    // What the controller imports stays in its memory for its life (test/unit/module-footprint.test.ts).
    files: ['src/**/*.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          paths: [
            {
              name: 'node:http',
              allowTypeImports: true,
              message:
                "use process.getBuiltinModule('node:http'): an ES import loads undici and http2 for its WebSocket export (see src/kube/rest.ts)",
            },
            {
              name: '@kubernetes/client-node',
              allowTypeImports: true,
              message: 'types only: loading it costs about 90 MiB; exec hooks import() it when first needed',
            },
          ],
        },
      ],
    },
  },
  {
    // Decide modules stay pure: no cluster client, no cloud SDK, no I/O.
    files: ['src/schedule/**', 'src/retention/**', 'src/api/**', 'src/restore/select*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            '@kubernetes/client-node',
            '@alicloud/*',
            'node:fs',
            'node:fs/*',
            'node:http*',
            'node:net',
          ],
        },
      ],
    },
  },
  { files: ['**/*.js'], extends: [tseslint.configs.disableTypeChecked] },
);
