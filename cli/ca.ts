/**
 * Checks a cluster CA before anything is signed with it: a CA given with --ca-from or read from a
 * cluster's clustermesh-ca Secret must be a self-signed CA certificate, valid now, with its key.
 */
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { UserError } from '../lib/errors.js';
import { type CertifiedKey, verifyCertificate } from '../lib/pki.js';

const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----[\s\S]+?-----END \1-----/g;

/** The first certificate and the first private key of a PEM text (either order). */
export function splitPemBundle(text: string): { certPem?: string; keyPem?: string } {
  const blocks = [...text.matchAll(PEM_BLOCK)];
  const cert = blocks.find((b) => b[1] === 'CERTIFICATE');
  const key = blocks.find((b) => /PRIVATE KEY$/.test(b[1]));
  return { certPem: cert && `${cert[0]}\n`, keyPem: key && `${key[0]}\n` };
}

/** Why this CA cannot be used (one clause), or null. Pure apart from the clock passed in. */
export function caProblem(ca: CertifiedKey, now: Date = new Date()): string | null {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(ca.certPem);
  } catch {
    return 'the CA certificate is not a PEM X.509 certificate';
  }
  if (!cert.ca) return `certificate "${subjectCN(cert)}" is not a CA certificate (basicConstraints CA:FALSE)`;
  const selfSigned = verifyCertificate(ca.certPem, ca.certPem, now);
  if (!selfSigned.ok) {
    if (/expired|not valid before/.test(selfSigned.reason)) return `CA ${selfSigned.reason}`;
    return `CA "${subjectCN(cert)}" is issued by "${issuerCN(cert)}" (a foreign CA): give a self-signed root CA`;
  }
  try {
    if (!cert.checkPrivateKey(createPrivateKey(ca.keyPem)))
      return `the private key does not belong to CA "${subjectCN(cert)}"`;
  } catch {
    return 'the CA private key is not a PEM private key';
  }
  return null;
}

export function assertUsableCa(ca: CertifiedKey, where: string, now: Date = new Date()): CertifiedKey {
  const problem = caProblem(ca, now);
  if (problem) throw new UserError(`${where}: ${problem}`);
  return ca;
}

/** A CA from a PEM file holding the certificate and its key. */
export function readCaFile(path: string): CertifiedKey {
  if (!existsSync(path))
    throw new UserError(`--ca-from ${path}: no such file or kubeconfig context`);
  const { certPem, keyPem } = splitPemBundle(readFileSync(path, 'utf8'));
  if (!certPem || !keyPem)
    throw new UserError(
      `--ca-from ${path}: needs a PEM certificate and its PEM private key in the one file (cat ca.crt ca.key > ca.pem)`,
    );
  return assertUsableCa({ certPem, keyPem }, `--ca-from ${path}`);
}

function subjectCN(cert: X509Certificate): string {
  return cnOf(cert.subject);
}

function issuerCN(cert: X509Certificate): string {
  return cnOf(cert.issuer);
}

function cnOf(name: string): string {
  return name.split('\n').find((part) => part.startsWith('CN='))?.slice(3) ?? name;
}
