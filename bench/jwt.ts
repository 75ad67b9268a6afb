/**
 * `npm run bench:jwt`: tools/call through the middleware with JWT access tokens (ES256, RFC 8707
 * audience, roles and scopes from claims), with the verified-token cache and without it, against
 * the no-auth server in the same run (bench/middleware.ts does the measuring; same knobs).
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
process.env['BENCH_SCENARIOS'] ??= 'warden-jwt-call,warden-jwt-nocache-call';
await import('./middleware.js');
