/** `mcp-warden config check` and `mcp-warden migrate`. */
import type { Command } from 'commander';
import { Policy, compilePattern, staticTokens } from '@mcp-warden/core';
import { ConfigError } from '../../config/load.js';
import { canonicalResourceUri } from '@mcp-warden/core';
import { upstreamPolicy } from '../../server/gateway.js';
import { authorizationServerProblems, oauthIssuersOf } from '../../services.js';
import { injectedHeaders } from '../../upstream/http.js';
import { openStore } from '../../store/open.js';
import { type GlobalOptions, configPath, readConfig } from '../context.js';
import { ExitCode, colour, out } from '../output.js';

export function registerConfig(program: Command): void {
  const config = program.command('config').description('work with the configuration file');
  config
    .command('check')
    .description('validate the configuration: file, key path, what was expected, what was found')
    .action(() => {
      const options = program.opts<GlobalOptions>();
      const file = configPath(options);
      const { config: parsed } = readConfig(options);
      const problems: string[] = [];
      const attempt = (work: () => unknown) => {
        try {
          work();
        } catch (error) {
          problems.push(`${file}: ${(error as Error).message}`);
        }
      };
      attempt(() => new Policy({ roles: parsed.roles, ...(parsed.deny === undefined ? {} : { deny: parsed.deny }), scopes: parsed.auth.oauth.scopes }));
      // What serve builds per upstream: its policy (the global roles with its own on top) and, for
      // HTTP, the headers it sends.
      for (const [name, upstream] of Object.entries(parsed.upstreams)) {
        if (upstream.policy !== undefined) attempt(() => upstreamPolicy(parsed, name, upstream));
        if (upstream.type === 'http') attempt(() => injectedHeaders(name, upstream.headers));
      }
      const oauth = parsed.auth.oauth;
      attempt(() => oauthIssuersOf(parsed, oauth.authorizationServer.enabled ? { issuer: 'http://127.0.0.1', jwks: () => ({ keys: [] }) } : undefined));
      const defined = (role: string, where: string) => {
        if (!Object.hasOwn(parsed.roles, role)) problems.push(`${file}: ${where}: role "${role}" is not defined under roles`);
      };
      oauth.issuers.forEach((issuer, i) => {
        issuer.claims.defaultRoles.forEach((r) => defined(r, `auth.oauth.issuers[${i}].claims.defaultRoles`));
        issuer.claims.roles.forEach((rule, j) => {
          for (const roles of Object.values(rule.values ?? {})) roles.forEach((r) => defined(r, `auth.oauth.issuers[${i}].claims.roles[${j}].values`));
        });
      });
      oauth.authorizationServer.clients.forEach((client, i) => client.roles.forEach((r) => defined(r, `auth.oauth.authorizationServer.clients[${i}].roles`)));
      const federation = oauth.authorizationServer.federation;
      federation?.defaultRoles.forEach((r) => defined(r, 'auth.oauth.authorizationServer.federation.defaultRoles'));
      federation?.roles.forEach((rule, j) => {
        for (const roles of Object.values(rule.values)) roles.forEach((r) => defined(r, `auth.oauth.authorizationServer.federation.roles[${j}].values`));
      });
      if (oauth.authorizationServer.enabled) {
        // The URL serve would run at: the public URL, else the listen address (port as configured).
        const host = parsed.server.host.includes(':') ? `[${parsed.server.host}]` : parsed.server.host;
        attempt(() => {
          const problems = authorizationServerProblems(parsed, canonicalResourceUri(parsed.server.publicUrl ?? `http://${host}:${parsed.server.port}`));
          if (problems.length > 0) throw new Error(problems.join(`\n${file}: `));
        });
      }
      if (oauth.authorizationServer.registration.mode === 'token' && oauth.authorizationServer.registration.initialAccessToken === undefined) {
        problems.push(`${file}: auth.oauth.authorizationServer.registration.initialAccessToken: required when mode is token (use \${ENV})`);
      }
      attempt(() => staticTokens(parsed.auth.staticTokens));
      parsed.audit.recordArguments.forEach((p, i) => attempt(() => compilePattern(p, `audit.recordArguments[${i}]`)));
      for (const [i, token] of parsed.auth.staticTokens.entries()) {
        for (const role of token.roles) {
          if (!Object.hasOwn(parsed.roles, role)) problems.push(`${file}: auth.staticTokens[${i}].roles: role "${role}" is not defined under roles`);
        }
      }
      if (problems.length > 0) throw new ConfigError(problems);
      out(`${colour.green('ok')}: ${file} is valid (store: ${parsed.store.type}, roles: ${Object.keys(parsed.roles).join(', ') || 'none'})`);
    });

  program
    .command('migrate')
    .description('apply pending database migrations (they also run when the gateway starts)')
    .action(async () => {
      const { config: parsed } = readConfig(program.opts<GlobalOptions>());
      const store = await openStore(parsed.store, { migrate: false });
      try {
        const applied = await store.migrate();
        out(applied.length === 0 ? 'The database is up to date.' : `Applied: ${applied.join(', ')}`);
      } finally {
        await store.close();
      }
      process.exitCode = ExitCode.Ok;
    });
}
