/**
 * Test certificate authority, generated at test time with @peculiar/x509 over
 * Node's WebCrypto (ECDSA P-256, SHA-256). Nothing is read from or written to
 * disk; keys live only in memory (and in the PEM strings handed out).
 */
import { KeyObject, randomBytes, webcrypto } from 'node:crypto';
import type * as X509 from '@peculiar/x509';

/*
 * @peculiar/x509 pulls in tsyringe, which throws at load time unless a
 * Reflect metadata polyfill (the `reflect-metadata` package) is present. That
 * package is not a dependency of this project, so install the few functions
 * tsyringe uses (getMetadata, getOwnMetadata, defineMetadata) when missing,
 * then load @peculiar/x509 dynamically, after the shim.
 */
type MetaKey = string | symbol | undefined;
interface ReflectMeta {
  getMetadata?: (k: unknown, target: object, prop?: MetaKey) => unknown;
  getOwnMetadata?: (k: unknown, target: object, prop?: MetaKey) => unknown;
  hasMetadata?: (k: unknown, target: object, prop?: MetaKey) => boolean;
  defineMetadata?: (k: unknown, v: unknown, target: object, prop?: MetaKey) => void;
  metadata?: (k: unknown, v: unknown) => (target: object, prop?: MetaKey) => void;
}
function installReflectMetadataShim(): void {
  const R = Reflect as unknown as ReflectMeta;
  if (typeof R.getMetadata === 'function') return;
  const store = new WeakMap<object, Map<MetaKey, Map<unknown, unknown>>>();
  const own = (target: object, prop: MetaKey, create: boolean): Map<unknown, unknown> | undefined => {
    let byProp = store.get(target);
    if (!byProp) {
      if (!create) return undefined;
      byProp = new Map();
      store.set(target, byProp);
    }
    let m = byProp.get(prop);
    if (!m && create) {
      m = new Map();
      byProp.set(prop, m);
    }
    return m;
  };
  R.defineMetadata = (k, v, target, prop) => void own(target, prop, true)!.set(k, v);
  R.getOwnMetadata = (k, target, prop) => own(target, prop, false)?.get(k);
  R.getMetadata = (k, target, prop) => {
    for (let t: object | null = target, i = 0; t !== null && i < 1000; t = Object.getPrototypeOf(t) as object | null, i++) {
      const m = own(t, prop, false);
      if (m?.has(k)) return m.get(k);
    }
    return undefined;
  };
  R.hasMetadata = (k, target, prop) => R.getMetadata!(k, target, prop) !== undefined;
  R.metadata = (k, v) => (target, prop) => R.defineMetadata!(k, v, target, prop);
}
installReflectMetadataShim();
const x509: typeof X509 = await import('@peculiar/x509');

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;
const crypto = webcrypto;
x509.cryptoProvider.set(crypto);

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const SIGN = { name: 'ECDSA', hash: 'SHA-256' } as const;
const DAY = 24 * 60 * 60 * 1000;

export interface IssueOptions {
  /** SubjectAltName DNS names; the first one is also the subject CN. */
  dnsNames: string[];
  /** SubjectAltName IP addresses (optional). */
  ipAddresses?: string[];
  /** Default: now - 1 hour. */
  notBefore?: Date;
  /** Default: now + 30 days. */
  notAfter?: Date;
  /** Self-signed leaf: signed by its own key, not by this CA. */
  selfSigned?: boolean;
  /**
   * false: no subjectAltName extension at all, so the first dnsName is named only in the subject CN
   * (the CN-ID that RFC 9525 no longer accepts). Default true.
   */
  subjectAltName?: boolean;
}

export interface KeyAndCert {
  certPem: string;
  keyPem: string;
}

export interface TestCa extends KeyAndCert {
  /** Subject DN of the CA certificate. */
  readonly name: string;
  /** Issues a server (leaf) certificate. */
  issue(opts: IssueOptions): Promise<KeyAndCert>;
}

async function generateKeys(): Promise<CryptoKeyPair> {
  return (await crypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as CryptoKeyPair;
}

function keyToPem(key: CryptoKey): string {
  return KeyObject.from(key).export({ type: 'pkcs8', format: 'pem' }) as string;
}

function serial(): string {
  const b = randomBytes(16);
  b[0] = (b[0]! & 0x7f) | 0x01; // positive, no leading zero byte
  return b.toString('hex');
}

function dnEscape(s: string): string {
  return s.replace(/([,+"\\<>;=#])/g, '\\$1');
}

function names(opts: IssueOptions): X509.JsonGeneralName[] {
  return [
    ...opts.dnsNames.map((value) => ({ type: 'dns' as const, value })),
    ...(opts.ipAddresses ?? []).map((value) => ({ type: 'ip' as const, value })),
  ];
}

async function leafExtensions(opts: IssueOptions, leafKeys: CryptoKeyPair): Promise<X509.Extension[]> {
  return [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
    new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth], false),
    ...(opts.subjectAltName === false ? [] : [new x509.SubjectAlternativeNameExtension(names(opts), false)]),
    await x509.SubjectKeyIdentifierExtension.create(leafKeys.publicKey),
  ];
}

/** Creates a fresh, unrelated CA each call. `label` goes into the subject CN. */
export async function createTestCa(label = 'mta-sts-sidecar lab CA'): Promise<TestCa> {
  const caKeys = await generateKeys();
  const name = `CN=${dnEscape(label)} ${randomBytes(4).toString('hex')}, O=mta-sts-sidecar tests`;
  const now = Date.now();
  const caCert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name,
    notBefore: new Date(now - DAY),
    notAfter: new Date(now + 365 * DAY),
    keys: caKeys,
    signingAlgorithm: SIGN,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(caKeys.publicKey),
    ],
  });
  const caKeyPem = keyToPem(caKeys.privateKey);

  async function issue(opts: IssueOptions): Promise<KeyAndCert> {
    if (opts.dnsNames.length === 0 && (opts.ipAddresses ?? []).length === 0) {
      throw new Error('lab ca: issue() needs at least one dnsName or ipAddress');
    }
    const t = Date.now();
    const notBefore = opts.notBefore ?? new Date(t - 60 * 60 * 1000);
    const notAfter = opts.notAfter ?? new Date(t + 30 * DAY);
    const leafKeys = await generateKeys();
    const cn = opts.dnsNames[0] ?? opts.ipAddresses?.[0] ?? 'lab';
    const subject = `CN=${dnEscape(cn)}, O=mta-sts-sidecar tests`;
    const extensions = await leafExtensions(opts, leafKeys);
    let cert: X509.X509Certificate;
    if (opts.selfSigned) {
      cert = await x509.X509CertificateGenerator.createSelfSigned({
        serialNumber: serial(),
        name: subject,
        notBefore,
        notAfter,
        keys: leafKeys,
        signingAlgorithm: SIGN,
        extensions,
      });
    } else {
      extensions.push(await x509.AuthorityKeyIdentifierExtension.create(caKeys.publicKey));
      cert = await x509.X509CertificateGenerator.create({
        serialNumber: serial(),
        subject,
        issuer: caCert.subject,
        notBefore,
        notAfter,
        publicKey: leafKeys.publicKey,
        signingKey: caKeys.privateKey,
        signingAlgorithm: SIGN,
        extensions,
      });
    }
    return { certPem: cert.toString('pem') + '\n', keyPem: keyToPem(leafKeys.privateKey) };
  }

  return { name: caCert.subject, certPem: caCert.toString('pem') + '\n', keyPem: caKeyPem, issue };
}
