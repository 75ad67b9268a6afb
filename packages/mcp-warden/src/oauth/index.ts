/** The built-in OAuth 2.1 authorization server: what the gateway wiring and the CLI use. */
export {
  type AuthorizationServer,
  type AuthorizationServerLogger,
  type AuthorizationServerOptions,
  type UserDirectory,
  canonicalResource,
  createAuthorizationServer,
} from './authorization-server.js';
export { mapClaimsToRoles } from './federation.js';
export { loadSigningKeys, rotateSigningKeys, signingKeyRetentionMs } from './keys.js';
