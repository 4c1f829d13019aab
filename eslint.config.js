// @ts-check
import js from "@eslint/js";
import globals from "globals";
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["dist/**", "node_modules/**", "data/**"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  { languageOptions: { globals: globals.node } },
  {
    rules: {
      "@typescript-eslint/no-explicit-any": "error",
      "@typescript-eslint/no-unused-vars": [
        "error",
        { argsIgnorePattern: "^_", varsIgnorePattern: "^_" },
      ],
    },
  },
  {
    // Glue is split into named steps. A hot path that must stay in one piece says so with
    // `// eslint-disable-next-line max-lines-per-function -- hot path: <why>`.
    files: ["agent/**/*.ts"],
    rules: {
      "max-lines-per-function": ["error", { max: 100, skipBlankLines: false, skipComments: false }],
    },
  },
  {
    // zod 4's core keeps ~11 MiB more resident than its v3 API for the sidecar's life (issue
    // 16): agent/ takes z from agent/common/zod.ts, which loads zod/v3 and sets its messages.
    files: ["agent/**/*.ts"],
    ignores: ["agent/common/zod.ts"],
    rules: {
      "no-restricted-imports": [
        "error",
        {
          patterns: [
            {
              regex: "^zod(/|$)",
              message: "import z from agent/common/zod.ts (zod/v3 with the agent's messages)",
            },
          ],
        },
      ],
    },
  },
  {
    // Tests may assert presence with `!` after checking it.
    files: ["test/**/*.ts"],
    rules: { "@typescript-eslint/no-non-null-assertion": "off" },
  },
);
