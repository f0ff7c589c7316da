/** The JSON form of a CacheEntry that the stores write and read back (sqlite: its policy column). */
import { MODES } from '../sts/policy.js';
import { RFC8461 } from '../sts/rfc8461.js';
import type { Policy } from '../sts/types.js';
import type { CacheEntry } from './store.js';

/** Shared by every stored policy without extensions (almost all); never written to. */
const NO_EXTENSIONS = Object.freeze([]) as unknown as Policy['extensions'];

/**
 * A policy read back from JSON, sharing what every policy has: JSON.parse makes a new "STSv1", a new
 * "enforce" and a new empty array for each, about 80 bytes a policy that a million-policy warm load kept
 * (issue 12). The canonical mode string also makes `mode === 'enforce'` a pointer comparison.
 */
export function canonicalPolicy(policy: Policy): Policy {
  const mode = MODES.find((m) => m === policy.mode);
  if (mode !== undefined) policy.mode = mode;
  if (policy.version === RFC8461.VERSION) policy.version = RFC8461.VERSION;
  if (Array.isArray(policy.extensions) && policy.extensions.length === 0) policy.extensions = NO_EXTENSIONS;
  return policy;
}

/** The JSON we wrote, or undefined when it does not look like a CacheEntry (another writer, another version). */
export function decodeEntry(json: string): CacheEntry | undefined {
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const e = value as Record<string, unknown>;
  const ok =
    typeof e.domain === 'string' &&
    typeof e.id === 'string' &&
    typeof e.text === 'string' &&
    typeof e.policy === 'object' &&
    e.policy !== null &&
    typeof e.fetchedAt === 'number' &&
    typeof e.expiresAt === 'number' &&
    typeof e.checkedAt === 'number' &&
    typeof e.failures === 'number' &&
    (e.lastError === null || typeof e.lastError === 'object');
  if (!ok) return undefined;
  canonicalPolicy(e.policy as Policy);
  return value as CacheEntry;
}
