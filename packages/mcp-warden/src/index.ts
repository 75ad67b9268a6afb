/**
 * `mcp-warden`: the gateway and CLI. This release ships the library pipeline; the gateway
 * (`mcp-warden serve`), stores, keys and audit log arrive with the next issues.
 */
export * from '@mcp-warden/core';
