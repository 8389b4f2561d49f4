/**
 * Generates `config/schema.json` from the TypeBox schema. Run after changing schema.ts:
 *   npm run build && node dist/agent/config/writeSchema.js
 * test/agent/config.test.ts fails when the committed file is stale.
 */
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ConfigSchema } from './schema.js';

/** Where the generated schema lives, relative to the repository root. */
export const SCHEMA_FILE = 'config/schema.json';

/** The JSON Schema text exactly as it is committed (2-space indent, trailing newline). */
export function schemaJson(): string {
  const doc = { $schema: 'https://json-schema.org/draft/2020-12/schema', ...ConfigSchema };
  return JSON.stringify(doc, null, 2) + '\n';
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  const out = resolve(process.argv[2] ?? SCHEMA_FILE);
  writeFileSync(out, schemaJson());
  console.log(`wrote ${out}`);
}
