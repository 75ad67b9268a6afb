/**
 * `mcp-warden oauth rotate-keys`: a new signing key pair for the built-in authorization server. The
 * retired keys stay published in its JWKS until every token they signed has expired, so tokens in
 * flight keep verifying; running instances sign with the new key once restarted.
 */
import type { Command } from 'commander';
import { rotateSigningKeys, signingKeyRetentionMs } from '../../oauth/keys.js';
import { type GlobalOptions, withStore } from '../context.js';
import { ExitCode, out, printJson } from '../output.js';

export function registerOAuth(program: Command): void {
  const oauth = program.command('oauth').description('the built-in OAuth authorization server');
  oauth
    .command('rotate-keys')
    .description('put a new signing key pair in front; the old public keys stay published until their tokens expire (restart instances to sign with the new key)')
    .option('--json', 'print JSON')
    .action(async (options: { json?: boolean }) => {
      await withStore(program.opts<GlobalOptions>(), async (store, config) => {
        const retainMs = signingKeyRetentionMs(config.auth.oauth.authorizationServer);
        const kids = await rotateSigningKeys(store.oauth, retainMs);
        if (options.json === true) printJson({ active: kids, retiredKeysPublishedForSeconds: Math.round(retainMs / 1000) });
        else {
          out(`New signing keys: ${kids.join(', ')}.`);
          out(`The previous keys stay in the JWKS for ${Math.round(retainMs / 1000)} s. Restart every gateway instance to sign with the new keys.`);
        }
      });
      process.exitCode = ExitCode.Ok;
    });
}
