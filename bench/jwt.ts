/**
 * `npm run bench:jwt`: tools/call through the middleware with JWT access tokens (ES256, RFC 8707
 * audience, roles and scopes from claims), with the verified-token cache and without it, against
 * a no-auth server receiving the very same request (the JWT sent and ignored; scenario 1j), in the
 * same run, and against scenario 1 (a short token) for the end-to-end view (bench/middleware.ts does
 * the measuring; same knobs; 4 rounds unless BENCH_ROUNDS says otherwise).
 * Target: ≥ 0.95 of no-auth with the cache.
 */
import { SignJWT, exportJWK, generateKeyPair } from 'jose';
import { JWT_AUDIENCE, JWT_ISSUER } from './middleware-apps.js';

const { privateKey, publicKey } = await generateKeyPair('ES256');
process.env['BENCH_JWT_PUBLIC_JWK'] = JSON.stringify({ ...(await exportJWK(publicKey)), kid: 'bench', alg: 'ES256', use: 'sig' });
process.env['BENCH_JWT_TOKEN'] = await new SignJWT({ roles: ['admin'], scope: 'mcp:admin', client_id: 'admin' })
  .setProtectedHeader({ alg: 'ES256', kid: 'bench', typ: 'at+jwt' })
  .setIssuer(JWT_ISSUER)
  .setSubject('admin')
  .setAudience(JWT_AUDIENCE)
  .setIssuedAt()
  .setExpirationTime('2h')
  .sign(privateKey);
// Scenario 1 too, so the run also shows the JWT scenarios against a request with a short token.
process.env['BENCH_SCENARIOS'] ??= 'noauth-call,warden-jwt-call,warden-jwt-nocache-call';
// The margins measured here are a few percent, within one round's noise on this shared machine.
process.env['BENCH_ROUNDS'] ??= '4';
await import('./middleware.js');
