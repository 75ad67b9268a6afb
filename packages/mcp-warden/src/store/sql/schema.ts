/** Table types for Kysely. Times are integers (ms since the epoch); PostgreSQL returns BIGINT as text. */
import type { Generated } from 'kysely';

type BigIntColumn = number | string;

export interface ApiKeysTable {
  id: string;
  name: string;
  hash: string;
  /** JSON array of role names. */
  roles: string;
  note: string | null;
  created_at: BigIntColumn;
  expires_at: BigIntColumn | null;
  revoked_at: BigIntColumn | null;
  last_used_at: BigIntColumn | null;
  rotated_from: string | null;
  replaced_by: string | null;
}

export interface AuditEventsTable {
  seq: BigIntColumn;
  time: string;
  time_ms: BigIntColumn;
  request_id: string;
  principal_id: string | null;
  principal_kind: string | null;
  upstream: string | null;
  method: string;
  kind: string;
  target: string | null;
  decision: string;
  rule: string;
  reason: string;
  latency_micros: number;
  client_address: string | null;
  user_agent: string | null;
  credential_ref: string | null;
  /** JSON of the recorded (redacted) arguments. */
  arguments: string | null;
  prev_hash: string;
  hash: string;
}

export interface AuditHeadTable {
  id: Generated<number>;
  seq: BigIntColumn;
  hash: string;
  pruned_seq: BigIntColumn;
  pruned_hash: string;
}

export interface SecretsTable {
  name: string;
  value: string;
}

export interface UsersTable {
  id: string;
  username: string;
  username_folded: string;
  /** argon2id PHC string; null for federated-only accounts. */
  password_hash: string | null;
  /** JSON array of role names. */
  roles: string;
  disabled_at: BigIntColumn | null;
  created_at: BigIntColumn;
  updated_at: BigIntColumn;
  federated_issuer: string | null;
  federated_subject: string | null;
}

export interface Database {
  mcpw_secrets: SecretsTable;
  mcpw_api_keys: ApiKeysTable;
  mcpw_audit_events: AuditEventsTable;
  mcpw_audit_head: AuditHeadTable;
  mcpw_users: UsersTable;
}
