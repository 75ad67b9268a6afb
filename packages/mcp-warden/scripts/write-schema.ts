/** Writes schema/mcp-warden.schema.json from the zod schema (`npm run schema`). */
import { writeFileSync } from 'node:fs';
import { configJsonSchema } from '../src/config/json-schema.js';

writeFileSync(new URL('../schema/mcp-warden.schema.json', import.meta.url), `${JSON.stringify(configJsonSchema(), null, 2)}\n`);
