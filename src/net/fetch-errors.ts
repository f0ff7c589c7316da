/** Map whatever undici, node:tls and node:net throw onto our reason classes, keeping the cause. */
import { StsError } from '../errors.js';
import { CertificateIdentityError } from './identity.js';

// node:tls / OpenSSL verification and handshake failures.
const TLS_CODES = new Set([
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_UNTRUSTED',
  'CERT_REVOKED',
  'CERT_SIGNATURE_FAILURE',
  'INVALID_CA',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'ERR_SSL_WRONG_VERSION_NUMBER',
  'ECONNRESET_TLS',
]);
const TIMEOUT_CODES = new Set([
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'ETIMEDOUT',
  'ABORT_ERR',
]);

export function classifyFetchError(err: unknown, url: string, signal: AbortSignal): StsError {
  const found = findStsError(err);
  if (found) return found;
  if (signal.aborted) return new StsError('timeout', `${url}: no complete answer in time`, { cause: err });
  const code = errorCode(err);
  if (code === 'UND_ERR_RES_EXCEEDED_MAX_SIZE') return new StsError('size', `${url}: body too large`, { cause: err });
  if (TIMEOUT_CODES.has(code)) return new StsError('timeout', `${url}: ${code}`, { cause: err });
  if (TLS_CODES.has(code) || code.startsWith('ERR_SSL_') || code.startsWith('ERR_TLS_')) {
    // Our identity rule says which names the certificate has, or that it has none but a CN (RFC 9525).
    const identity = findIdentityError(err);
    return new StsError('tls', `${url}: ${code}${identity ? `: ${identity.message}` : ''}`, { cause: err });
  }
  return new StsError('connect', `${url}: ${code || (err as Error)?.message || String(err)}`, { cause: err });
}

function findStsError(err: unknown): StsError | undefined {
  for (let e = err, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    if (e instanceof StsError) return e;
  }
  return undefined;
}

function findIdentityError(err: unknown): CertificateIdentityError | undefined {
  for (let e = err, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    if (e instanceof CertificateIdentityError) return e;
  }
  return undefined;
}

function errorCode(err: unknown): string {
  for (let e = err, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && code !== 'UND_ERR_SOCKET') return code;
  }
  return '';
}
