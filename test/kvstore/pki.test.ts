import { X509Certificate } from 'node:crypto';
import {
  certificateCommonName,
  createCA,
  issueClientCert,
  issueServerCert,
  verifyCertificate,
  type CertifiedKey,
} from '../../lib/pki.js';

describe('pki', () => {
  let ca: CertifiedKey;
  beforeAll(async () => {
    ca = await createCA('west-ca');
  });

  it('creates a CA certificate with an ECDSA P-256 key', () => {
    const cert = new X509Certificate(ca.certPem);
    expect(cert.ca).toBe(true);
    expect(cert.subject).toBe('CN=west-ca');
    expect(cert.publicKey.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
    expect(ca.keyPem).toMatch(/^-----BEGIN PRIVATE KEY-----/);
  });

  it('issues a server certificate with IP and DNS SANs, chained to the CA', async () => {
    const server = await issueServerCert(ca, {
      commonName: 'etcd',
      dnsNames: ['etcd.local'],
      ipAddresses: ['10.99.0.10', 'fd99::10'],
    });
    const cert = new X509Certificate(server.certPem);
    expect(cert.subjectAltName).toContain('DNS:etcd.local');
    expect(cert.checkIP('10.99.0.10')).toBe('10.99.0.10');
    expect(cert.checkIP('fd99::10')).toBe('fd99::10');
    expect(cert.checkIP('10.99.0.11')).toBeUndefined();
    expect(cert.ca).toBe(false);
    expect(verifyCertificate(server.certPem, ca.certPem)).toMatchObject({ ok: true, subjectCN: 'etcd' });
  });

  it('issues a client certificate whose CN is the etcd username', async () => {
    const client = await issueClientCert(ca, { commonName: 'remote-east' });
    expect(certificateCommonName(client.certPem)).toBe('remote-east');
    expect(new X509Certificate(client.certPem).keyUsage).toEqual(['1.3.6.1.5.5.7.3.2']);
    expect(verifyCertificate(client.certPem, ca.certPem)).toMatchObject({
      ok: true,
      subjectCN: 'remote-east',
    });
  });

  it('rejects a certificate from a foreign CA', async () => {
    const foreign = await issueClientCert(await createCA('east-ca'), { commonName: 'remote-east' });
    expect(verifyCertificate(foreign.certPem, ca.certPem)).toEqual({
      ok: false,
      reason: 'certificate "remote-east" was not issued by CA "west-ca" (foreign CA)',
    });
  });

  it('rejects an expired and a not-yet-valid certificate', async () => {
    const expired = await issueClientCert(ca, {
      commonName: 'old',
      notBefore: new Date('2020-01-01T00:00:00Z'),
      notAfter: new Date('2021-01-01T00:00:00Z'),
    });
    expect(verifyCertificate(expired.certPem, ca.certPem)).toEqual({
      ok: false,
      reason: 'certificate "old" expired on 2021-01-01T00:00:00.000Z',
    });
    const future = await issueClientCert(ca, {
      commonName: 'future',
      notBefore: new Date(Date.now() + 86_400_000),
    });
    const result = verifyCertificate(future.certPem, ca.certPem);
    expect(result.ok ? '' : result.reason).toMatch(/^certificate "future" is not valid before /);
  });

  it('says which input is not a certificate', () => {
    expect(verifyCertificate('garbage', ca.certPem)).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/^certificate is not a PEM/),
    });
    expect(verifyCertificate(ca.certPem, 'garbage')).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/^CA certificate is not a PEM/),
    });
  });

  it('signs with the CA key: a certificate re-signed by another key does not verify', async () => {
    const impostorCA = await createCA('west-ca'); // same name, different key
    const cert = await issueClientCert(impostorCA, { commonName: 'admin' });
    expect(verifyCertificate(cert.certPem, ca.certPem).ok).toBe(false);
  });
});
