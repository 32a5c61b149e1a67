/**
 * A small PKI for etcd mTLS: a CA, server certificates (IP + DNS SANs) and client certificates
 * whose CN is the etcd username (etcd takes the user from the CN under --client-cert-auth).
 * Keys are ECDSA P-256, PEM in and out (PKCS#8 keys), generated with Node's webcrypto.
 * Verification uses Node's own X509Certificate, so it does not depend on the generator.
 */
import { X509Certificate, randomBytes, webcrypto } from 'node:crypto';
// @peculiar/x509 → tsyringe refuses to load without the Reflect metadata polyfill, so it comes first.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

const KEY_ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGNING_ALGORITHM = { name: 'ECDSA', hash: 'SHA-256' } as const;
const DAY_MS = 24 * 60 * 60 * 1000;
/** Tolerates small clock skew between the issuer and the machines that check the certificate. */
const BACKDATE_MS = 5 * 60 * 1000;

export interface CertifiedKey {
  certPem: string;
  keyPem: string;
}

export interface Validity {
  /** Days from now (default 365); ignored when notAfter is given. */
  validDays?: number;
  notBefore?: Date;
  notAfter?: Date;
}

export interface ServerCertOptions extends Validity {
  commonName: string;
  dnsNames?: string[];
  ipAddresses?: string[];
}

export interface ClientCertOptions extends Validity {
  /** The etcd username; for Kubernetes, the user name. */
  commonName: string;
  /** Subject O entries: Kubernetes reads them as the user's groups (e.g. system:masters). */
  organizations?: string[];
}

export type VerifyResult = { ok: true; subjectCN: string; notAfter: Date } | { ok: false; reason: string };

export async function createCA(commonName: string, validity: Validity = {}): Promise<CertifiedKey> {
  const keys = await generateKeys();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: [{ CN: [commonName] }],
    ...validityDates(validity, 3650),
    signingAlgorithm: SIGNING_ALGORITHM,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { certPem: cert.toString('pem'), keyPem: await privateKeyPem(keys.privateKey) };
}

/** A bare ECDSA P-256 private key (PKCS#8 PEM), e.g. a service-account token signing key. */
export async function createPrivateKeyPem(): Promise<string> {
  return privateKeyPem((await generateKeys()).privateKey);
}

/** A certificate for a TLS server (also usable as a client: etcd dials itself with it). */
export async function issueServerCert(ca: CertifiedKey, opts: ServerCertOptions): Promise<CertifiedKey> {
  const names = [
    ...(opts.dnsNames ?? []).map((value) => ({ type: 'dns' as const, value })),
    ...(opts.ipAddresses ?? []).map((value) => ({ type: 'ip' as const, value })),
  ];
  return issue(ca, [{ CN: [opts.commonName] }], opts, [
    new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
    new x509.SubjectAlternativeNameExtension(names),
  ]);
}

export async function issueClientCert(ca: CertifiedKey, opts: ClientCertOptions): Promise<CertifiedKey> {
  return issue(ca, [...(opts.organizations ?? []).map((o) => ({ O: [o] })), { CN: [opts.commonName] }], opts, [
    new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth]),
  ]);
}

/**
 * Checks that a certificate was signed by the CA and is valid at `now`. The reasons are meant
 * for an operator: they say which certificate is wrong and why.
 */
export function verifyCertificate(certPem: string, caPem: string, now: Date = new Date()): VerifyResult {
  const cert = parseCertificate(certPem, 'certificate');
  if (!cert.ok) return cert;
  const ca = parseCertificate(caPem, 'CA certificate');
  if (!ca.ok) return ca;
  const subjectCN = commonNameOf(cert.value.subject);
  if (!cert.value.checkIssued(ca.value) || !cert.value.verify(ca.value.publicKey)) {
    return {
      ok: false,
      reason: `certificate "${subjectCN}" was not issued by CA "${commonNameOf(ca.value.subject)}" (foreign CA)`,
    };
  }
  const notBefore = new Date(cert.value.validFrom);
  const notAfter = new Date(cert.value.validTo);
  if (now < notBefore) {
    return { ok: false, reason: `certificate "${subjectCN}" is not valid before ${notBefore.toISOString()}` };
  }
  if (now > notAfter) {
    return { ok: false, reason: `certificate "${subjectCN}" expired on ${notAfter.toISOString()}` };
  }
  return { ok: true, subjectCN, notAfter };
}

/** The CN of a certificate's subject (the etcd username of a client certificate). */
export function certificateCommonName(certPem: string): string {
  return commonNameOf(new X509Certificate(certPem).subject);
}

async function issue(
  ca: CertifiedKey,
  subject: Array<Record<string, string[]>>,
  validity: Validity,
  extensions: InstanceType<typeof x509.Extension>[],
): Promise<CertifiedKey> {
  const caCert = new x509.X509Certificate(ca.certPem);
  const caKey = await importPrivateKey(ca.keyPem);
  const keys = await generateKeys();
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject,
    issuer: caCert.subject,
    ...validityDates(validity, 365),
    signingAlgorithm: SIGNING_ALGORITHM,
    publicKey: keys.publicKey,
    signingKey: caKey,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment,
        true,
      ),
      await x509.AuthorityKeyIdentifierExtension.create(caCert, false),
      ...extensions,
    ],
  });
  return { certPem: cert.toString('pem'), keyPem: await privateKeyPem(keys.privateKey) };
}

function validityDates(validity: Validity, defaultDays: number): { notBefore: Date; notAfter: Date } {
  const now = Date.now();
  const notBefore = validity.notBefore ?? new Date(now - BACKDATE_MS);
  const notAfter = validity.notAfter ?? new Date(now + (validity.validDays ?? defaultDays) * DAY_MS);
  return { notBefore, notAfter };
}

async function generateKeys(): Promise<CryptoKeyPair> {
  return (await webcrypto.subtle.generateKey(KEY_ALGORITHM, true, ['sign', 'verify'])) as CryptoKeyPair;
}

async function privateKeyPem(key: CryptoKey): Promise<string> {
  const der = await webcrypto.subtle.exportKey('pkcs8', key as webcrypto.CryptoKey);
  return x509.PemConverter.encode(der, 'PRIVATE KEY');
}

async function importPrivateKey(pem: string): Promise<CryptoKey> {
  const der = x509.PemConverter.decodeFirst(pem);
  return (await webcrypto.subtle.importKey('pkcs8', der, KEY_ALGORITHM, false, ['sign'])) as CryptoKey;
}

/** 16 random bytes with the top bit clear: DER serials must be positive. */
function randomSerial(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0] ?? 0) & 0x7f;
  return bytes.toString('hex');
}

function parseCertificate(
  pem: string,
  what: string,
): { ok: true; value: X509Certificate } | { ok: false; reason: string } {
  try {
    return { ok: true, value: new X509Certificate(pem) };
  } catch (err) {
    return { ok: false, reason: `${what} is not a PEM X.509 certificate (${(err as Error).message})` };
  }
}

function commonNameOf(subject: string): string {
  const line = subject.split('\n').find((part) => part.startsWith('CN='));
  return line ? line.slice(3) : subject;
}
