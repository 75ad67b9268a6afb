/**
 * The configuration as a JSON Schema (draft 2020-12), generated from the zod schema so the two never
 * disagree. Published as `mcp-warden/schema.json` for editors; `npm run schema` rewrites the file and
 * a test fails when it is stale.
 */
import { z } from 'zod';
import { configSchema } from './schema.js';

export function configJsonSchema(): Record<string, unknown> {
  const generated = z.toJSONSchema(configSchema, { io: 'input', unrepresentable: 'any' }) as Record<string, unknown>;
  return {
    ...generated,
    $id: 'mcp-warden.schema.json',
    title: 'mcp-warden configuration',
    description: 'mcp-warden.yaml: store, auth, roles, upstreams, audit. Durations are strings such as 500ms, 30s, 15m, 24h, 30d.',
  };
}
