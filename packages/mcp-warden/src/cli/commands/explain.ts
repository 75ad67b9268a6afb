/** `mcp-warden explain`: what the policy decides for a key or role and one action, without calling anything. */
import type { Command } from 'commander';
import { type McpAction, Policy, type ToolAnnotations } from '@mcp-warden/core';
import { keyStatus } from '../../keys/service.js';
import { type GlobalOptions, readConfig, withStore } from '../context.js';
import { ExitCode, UserError, colour, out, printJson } from '../output.js';

interface ExplainOptions {
  key?: string;
  role?: string[];
  tool?: string;
  resource?: string;
  prompt?: string;
  args?: string;
  annotations?: string;
  json?: boolean;
}

function parseJsonObject(text: string, flag: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new UserError(`${flag}: not valid JSON; pass an object such as '{"path":"/tmp"}'`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new UserError(`${flag}: expected a JSON object`);
  return value as Record<string, unknown>;
}

export function registerExplain(program: Command): void {
  program
    .command('explain')
    .description('show the decision, the rule that made it and why, for a key or role and one action')
    .option('--key <id>', 'decide for this API key (its roles and status)')
    .option('--role <role...>', 'decide for these roles')
    .option('--tool <name>', 'a tools/call of this tool')
    .option('--resource <uri>', 'a resources/read of this URI')
    .option('--prompt <name>', 'a prompts/get of this prompt')
    .option('--args <json>', 'the call\'s arguments (recorded in the answer; role policies do not read them)')
    .option('--annotations <json>', 'the tool\'s annotations, e.g. \'{"readOnlyHint":true}\' (else the config\'s toolAnnotations, else unknown)')
    .option('--json', 'print JSON')
    .action(async (options: ExplainOptions) => {
      if ((options.key === undefined) === (options.role === undefined)) throw new UserError('pass exactly one of --key ID or --role ROLE');
      const targets = [options.tool, options.resource, options.prompt].filter((t) => t !== undefined);
      if (targets.length !== 1) throw new UserError('pass exactly one of --tool NAME, --resource URI or --prompt NAME');
      const args = options.args === undefined ? undefined : parseJsonObject(options.args, '--args');
      const annotations = options.annotations === undefined ? undefined : (parseJsonObject(options.annotations, '--annotations') as ToolAnnotations);

      const { config } = readConfig(program.opts<GlobalOptions>());
      let roles = options.role ?? [];
      let keyNote: string | undefined;
      if (options.key !== undefined) {
        const id = options.key;
        const record = await withStore(program.opts<GlobalOptions>(), (store) => store.keys.getKey(id));
        if (record === undefined) throw new UserError(`no key with id ${id}; see mcp-warden keys list`, ExitCode.NotFound);
        roles = [...record.roles];
        const status = keyStatus(record, Date.now());
        if (status === 'revoked' || status === 'expired') keyNote = `key ${id} is ${status}: every request with it is refused with 401 before any policy`;
      }
      const unknownRoles = roles.filter((r) => !Object.hasOwn(config.roles, r));
      const policy = new Policy({
        roles: config.roles,
        ...(config.deny === undefined ? {} : { deny: config.deny }),
        toolAnnotations: { ...(config.toolAnnotations ?? {}), ...(annotations === undefined || options.tool === undefined ? {} : { [options.tool]: annotations }) },
      });
      const action: McpAction =
        options.tool !== undefined
          ? { method: 'tools/call', kind: 'tool', id: 1, target: options.tool, ...(args === undefined ? {} : { arguments: args }) }
          : options.resource !== undefined
            ? { method: 'resources/read', kind: 'resource', id: 1, target: options.resource }
            : { method: 'prompts/get', kind: 'prompt', id: 1, target: options.prompt as string, ...(args === undefined ? {} : { arguments: args }) };
      const principal = { id: options.key ?? `roles:${roles.join(',')}`, kind: options.key === undefined ? 'roles' : 'api-key', subject: '', roles, scopes: [], claims: {} };
      const decision = policy.decide(principal, action);
      const known = options.tool === undefined ? undefined : policy.annotations.get(options.tool);
      const notes = [
        ...(keyNote === undefined ? [] : [keyNote]),
        ...(unknownRoles.length === 0 ? [] : [`role(s) ${unknownRoles.join(', ')} are not defined in the config and grant nothing`]),
        ...(options.tool !== undefined && known === undefined ? ['no annotations known for this tool: it is treated as destructive (the MCP defaults); pass --annotations to see otherwise'] : []),
        ...(args === undefined ? [] : ['arguments are not consulted by role policies']),
      ];
      if (options.json === true) {
        printJson({ decision: decision.allow ? 'allow' : 'deny', rule: decision.rule, reason: decision.reason, missingPermission: decision.missingPermission ?? null, action, roles, notes });
        return;
      }
      const verdict = decision.allow ? colour.green('allow') : colour.red('deny');
      out(`${verdict}  ${action.method} ${action.target}`);
      out(`  rule:   ${decision.rule}`);
      out(`  reason: ${decision.reason}`);
      if (decision.missingPermission !== undefined) out(`  needs:  ${decision.missingPermission}`);
      for (const note of notes) out(colour.dim(`  note:   ${note}`));
    });
}
