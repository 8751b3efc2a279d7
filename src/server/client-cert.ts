import type { IncomingMessage } from 'node:http';
import { TLSSocket } from 'node:tls';
import { SubjectAlternativeNameExtension, X509Certificate } from '@peculiar/x509';
import type { ClientCertificate } from '../trust-policies/index.js';

/**
 * The caller's client certificate, when the TLS layer verified it against `listen.tls.clientCaFile`.
 * The handshake only asks for one (discovery, JWKS and the trust bundle stay public), so an
 * absent or foreign certificate reaches here as an unauthorized socket and yields `undefined`.
 */
export function verifiedClientCertificate(request: {
  incoming: IncomingMessage | undefined;
}): ClientCertificate | undefined {
  const socket: unknown = request.incoming?.socket;
  if (!(socket instanceof TLSSocket) || !socket.authorized) return undefined;
  const peer = socket.getPeerCertificate();
  if (!peer?.raw) return undefined;
  return describeCertificate(peer.raw);
}

/** Subject DN and URI SANs, parsed with an ASN.1 parser rather than from OpenSSL's text rendering. */
function describeCertificate(der: Uint8Array): ClientCertificate {
  const certificate = new X509Certificate(der);
  const san = certificate.getExtension(SubjectAlternativeNameExtension);
  const uris = san
    ? san.names.items.filter((name) => name.type === 'url').map((name) => name.value)
    : [];
  return { subject: certificate.subject, uris };
}
