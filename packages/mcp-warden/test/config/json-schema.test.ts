import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { configJsonSchema } from '../../src/config/json-schema.js';

describe('the published JSON Schema', () => {
  it('matches the zod schema (run npm run schema after changing the config)', () => {
    const published = JSON.parse(readFileSync(new URL('../../schema/mcp-warden.schema.json', import.meta.url), 'utf8'));
    expect(published).toEqual(configJsonSchema());
  });
  it('describes every section and refuses unknown keys at the top', () => {
    const schema = configJsonSchema() as { properties: Record<string, unknown>; additionalProperties: unknown };
    expect(Object.keys(schema.properties).sort()).toEqual(['audit', 'auth', 'deny', 'requestRateLimit', 'roles', 'server', 'store', 'toolAnnotations', 'upstreams']);
    expect(schema.additionalProperties).toBe(false);
  });
});
