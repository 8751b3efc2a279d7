import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { JWTPayload } from 'jose';
import { createTestCa, issueLeaf } from './kube-apiserver-pki.js';
import { verifyThroughDiscovery } from './relying-parties.js';

/**
 * A local stand-in for Microsoft Entra ID's token endpoint as `WorkloadIdentityCredential`
 * (@azure/identity, through MSAL) calls it: the tenant's OpenID configuration, then a
 * client-credentials request whose `client_assertion` is the federated token. Like Entra, it
 * verifies the assertion through the issuer's discovery document, for the audience
 * `api://AzureADTokenExchange` and the subject of the app's federated credential. MSAL wants
 * https: it listens with a certificate from its own CA (`caPem`).
 */
export interface EntraStandIn {
  url: string;
  caPem: string;
  accepted: JWTPayload[];
  /** Requests seen, as `METHOD path`, for a failure message. */
  seen: string[];
  close(): Promise<void>;
}

export async function startEntra(options: {
  issuer: string;
  tenantId: string;
  clientId: string;
  subject: string;
}): Promise<EntraStandIn> {
  const ca = await createTestCa('entra-stand-in-ca');
  const leaf = await issueLeaf(ca, 'server', 'CN=localhost');
  const accepted: JWTPayload[] = [];
  const seen: string[] = [];
  let base = '';
  const server: Server = createServer(
    { cert: leaf.certPem, key: leaf.keyPem },
    (request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => {
        void (async () => {
          const path = (request.url ?? '').split('?')[0] ?? '';
          seen.push(`${request.method} ${path}`);
          const answer = (status: number, body: Record<string, unknown>) => {
            response.writeHead(status, { 'content-type': 'application/json' });
            response.end(JSON.stringify(body));
          };
          const tenant = `${base}/${options.tenantId}`;
          if (
            request.method === 'GET' &&
            path === `/${options.tenantId}/v2.0/.well-known/openid-configuration`
          ) {
            return answer(200, {
              issuer: `${tenant}/v2.0`,
              authorization_endpoint: `${tenant}/oauth2/v2.0/authorize`,
              token_endpoint: `${tenant}/oauth2/v2.0/token`,
              end_session_endpoint: `${tenant}/oauth2/v2.0/logout`,
              jwks_uri: `${tenant}/discovery/v2.0/keys`,
              response_types_supported: ['code', 'id_token'],
              subject_types_supported: ['pairwise'],
              id_token_signing_alg_values_supported: ['RS256'],
            });
          }
          if (request.method === 'POST' && path === `/${options.tenantId}/oauth2/v2.0/token`) {
            const form = new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
            if (
              form.get('client_assertion_type') !==
                'urn:ietf:params:oauth:client-assertion-type:jwt-bearer' ||
              form.get('client_id') !== options.clientId
            ) {
              return answer(400, { error: 'invalid_request' });
            }
            let claims: JWTPayload;
            try {
              claims = await verifyThroughDiscovery(
                form.get('client_assertion') ?? '',
                options.issuer,
                'api://AzureADTokenExchange',
              );
            } catch (error) {
              return answer(401, {
                error: 'invalid_client',
                error_description: `AADSTS700211: ${String(error)}`,
              });
            }
            if (claims.sub !== options.subject)
              return answer(401, {
                error: 'invalid_client',
                error_description: 'AADSTS70021: no matching federated identity record',
              });
            accepted.push(claims);
            return answer(200, {
              token_type: 'Bearer',
              expires_in: 3599,
              ext_expires_in: 3599,
              access_token: `entra.${randomBytes(24).toString('base64url')}`,
            });
          }
          answer(404, { error: 'not_found' });
        })();
      });
    },
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `https://localhost:${(server.address() as AddressInfo).port}`;
  return {
    url: base,
    caPem: ca.certPem,
    accepted,
    seen,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
