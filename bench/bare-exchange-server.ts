import { createPublicKey, generateKeyPairSync, randomBytes, sign, verify } from 'node:crypto';
import { createServer } from 'node:http';

/**
 * A reference beside the ceiling: node:http doing only the signature work of an exchange, the
 * RS256 check of the subject token and an ES256 signature over a few claims, with none of the
 * broker's policy, audit, metrics or validation. What it reaches in the same run shows how much
 * of the gap to the ceiling is the platform's own (the pieces cost more together than apart:
 * caches, allocation, GC) and how much is the broker's.
 * Argument: the port, then the cluster's public key as base64 PEM.
 */
const port = Number(process.argv[2]);
const clusterKey = createPublicKey(Buffer.from(process.argv[3] ?? '', 'base64').toString('utf8'));
const signingKey = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
const header = Buffer.from('{"alg":"ES256","kid":"bare","typ":"JWT"}').toString('base64url');

function exchange(token: string): string | undefined {
  const firstDot = token.indexOf('.');
  const lastDot = token.lastIndexOf('.');
  if (firstDot < 0 || lastDot === firstDot) return undefined;
  const signed = Buffer.from(token.slice(0, lastDot), 'latin1');
  if (!verify('sha256', signed, clusterKey, Buffer.from(token.slice(lastDot + 1), 'base64url')))
    return undefined;
  const claims = JSON.parse(
    Buffer.from(token.slice(firstDot + 1, lastDot), 'base64url').toString('utf8'),
  ) as { sub?: string };
  const now = Math.floor(Date.now() / 1000);
  const payload = Buffer.from(
    JSON.stringify({
      iss: 'https://bare.test',
      sub: claims.sub,
      aud: 'bench',
      iat: now,
      exp: now + 900,
      jti: randomBytes(16).toString('base64url'),
    }),
  ).toString('base64url');
  const input = `${header}.${payload}`;
  return `${input}.${sign('sha256', Buffer.from(input, 'latin1'), signingKey).toString('base64url')}`;
}

createServer((request, response) => {
  const chunks: Buffer[] = [];
  request.on('data', (chunk: Buffer) => chunks.push(chunk));
  request.on('end', () => {
    const token = new URLSearchParams(Buffer.concat(chunks).toString('utf8')).get('subject_token');
    const issued = token ? exchange(token) : undefined;
    if (!issued) {
      response.writeHead(400).end();
      return;
    }
    response
      .writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' })
      .end(
        JSON.stringify({
          access_token: issued,
          issued_token_type: 'urn:ietf:params:oauth:token-type:jwt',
          token_type: 'N_A',
          expires_in: 900,
        }),
      );
  });
}).listen(port, '127.0.0.1');
