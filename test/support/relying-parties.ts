import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRemoteJWKSet, jwtVerify, type JWTPayload } from 'jose';

/**
 * Local stand-ins for the clouds that trust Tessera: real HTTP servers on 127.0.0.1 that do
 * what AWS STS and GCP STS do with a web identity, as far as a client library can see. They
 * trust one issuer and verify every token through that issuer's discovery document and JWKS,
 * as the clouds do, so a test through them shows a recipe works end to end.
 */
export interface RelyingParty {
  url: string;
  /** Every token accepted, with its verified claims. */
  accepted: JWTPayload[];
  close(): Promise<void>;
}

/** OIDC discovery, then the JWKS it names; the token must be from `issuer` for `audience`. */
export async function verifyThroughDiscovery(
  token: string,
  issuer: string,
  audience: string,
): Promise<JWTPayload> {
  const response = await fetch(`${issuer.replace(/\/$/, '')}/.well-known/openid-configuration`);
  if (!response.ok) throw new Error(`discovery answered ${response.status}`);
  const document = (await response.json()) as { issuer?: string; jwks_uri?: string };
  if (document.issuer !== issuer || !document.jwks_uri)
    throw new Error('discovery document does not match the issuer');
  const { payload } = await jwtVerify(token, createRemoteJWKSet(new URL(document.jwks_uri)), {
    issuer,
    audience,
  });
  return payload;
}

async function formBody(request: IncomingMessage): Promise<URLSearchParams> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

async function listen(
  handler: (request: IncomingMessage, response: ServerResponse) => Promise<void>,
): Promise<{ server: Server; url: string }> {
  const server = createServer((request, response) => {
    handler(request, response).catch(() => {
      response.statusCode = 500;
      response.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

const closer = (server: Server) => () =>
  new Promise<void>((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  });

const xml = (text: string) =>
  text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/**
 * AWS STS `AssumeRoleWithWebIdentity` (query protocol, XML answers): audience
 * `sts.amazonaws.com`, `sub` at most 255 characters, as AWS checks them.
 */
export async function startAwsSts(options: { issuer: string }): Promise<RelyingParty> {
  const accepted: JWTPayload[] = [];
  const { server, url } = await listen(async (request, response) => {
    const form = await formBody(request);
    const fail = (code: string, message: string) => {
      response.writeHead(400, { 'content-type': 'text/xml' });
      response.end(
        `<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>${code}</Code><Message>${xml(message)}</Message></Error><RequestId>${randomUUID()}</RequestId></ErrorResponse>`,
      );
    };
    if (form.get('Action') !== 'AssumeRoleWithWebIdentity')
      return fail('InvalidAction', 'only AssumeRoleWithWebIdentity');
    let claims: JWTPayload;
    try {
      claims = await verifyThroughDiscovery(
        form.get('WebIdentityToken') ?? '',
        options.issuer,
        'sts.amazonaws.com',
      );
    } catch (error) {
      return fail('InvalidIdentityToken', String(error));
    }
    if (!claims.sub || claims.sub.length > 255)
      return fail('ValidationError', 'SubjectFromWebIdentityToken');
    accepted.push(claims);
    const roleArn = form.get('RoleArn') ?? '';
    const session = form.get('RoleSessionName') ?? 'session';
    const expiration = new Date(Date.now() + 3600_000).toISOString();
    response.writeHead(200, { 'content-type': 'text/xml' });
    response.end(`<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleWithWebIdentityResult>
    <SubjectFromWebIdentityToken>${xml(claims.sub)}</SubjectFromWebIdentityToken>
    <Audience>sts.amazonaws.com</Audience>
    <AssumedRoleUser>
      <Arn>${xml(roleArn.replace(':iam::', ':sts::').replace(':role/', ':assumed-role/'))}/${xml(session)}</Arn>
      <AssumedRoleId>AROA${randomBytes(8).toString('hex').toUpperCase()}:${xml(session)}</AssumedRoleId>
    </AssumedRoleUser>
    <Credentials>
      <SessionToken>${randomBytes(32).toString('base64')}</SessionToken>
      <SecretAccessKey>${randomBytes(30).toString('base64')}</SecretAccessKey>
      <Expiration>${expiration}</Expiration>
      <AccessKeyId>ASIA${randomBytes(8).toString('hex').toUpperCase()}</AccessKeyId>
    </Credentials>
    <Provider>${xml(options.issuer)}</Provider>
  </AssumeRoleWithWebIdentityResult>
  <ResponseMetadata><RequestId>${randomUUID()}</RequestId></ResponseMetadata>
</AssumeRoleWithWebIdentityResponse>`);
  });
  return { url, accepted, close: closer(server) };
}

/**
 * GCP STS `POST /v1/token` (RFC 8693), as workload identity federation's `external_account`
 * credentials call it: the token's `aud` must be the pool provider's audience, its `sub` (the
 * usual `google.subject`) at most 127 bytes.
 */
export async function startGcpSts(options: { issuer: string }): Promise<RelyingParty> {
  const accepted: JWTPayload[] = [];
  const { server, url } = await listen(async (request, response) => {
    const form = await formBody(request);
    const answer = (status: number, body: Record<string, unknown>) => {
      response.writeHead(status, { 'content-type': 'application/json' });
      response.end(JSON.stringify(body));
    };
    if (
      request.url !== '/v1/token' ||
      form.get('grant_type') !== 'urn:ietf:params:oauth:grant-type:token-exchange'
    ) {
      return answer(400, { error: 'invalid_request' });
    }
    let claims: JWTPayload;
    try {
      claims = await verifyThroughDiscovery(
        form.get('subject_token') ?? '',
        options.issuer,
        form.get('audience') ?? '',
      );
    } catch (error) {
      return answer(400, { error: 'invalid_grant', error_description: String(error) });
    }
    if (!claims.sub || Buffer.byteLength(claims.sub) > 127)
      return answer(400, { error: 'invalid_grant', error_description: 'google.subject too long' });
    accepted.push(claims);
    answer(200, {
      access_token: `ya29.${randomBytes(24).toString('base64url')}`,
      issued_token_type: 'urn:ietf:params:oauth:token-type:access_token',
      token_type: 'Bearer',
      expires_in: 3600,
    });
  });
  return { url, accepted, close: closer(server) };
}
