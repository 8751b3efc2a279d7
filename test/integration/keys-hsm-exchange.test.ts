import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import pkcs11js from 'pkcs11js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSoftHsmToken, skipSoftHsm, type SoftHsmToken } from '../support/softhsm.js';
import {
  exchangeForm,
  JWT_TYPE,
  postToken,
  startTestApp,
  TOKEN_EXCHANGE,
  type TestApp,
} from '../support/app.js';

/** The whole broker with its signing keys in SoftHSM2: what a relying party sees. */
const PIN_ENV = 'TESSERA_TEST_PKCS11_PIN';
let token: SoftHsmToken;
let broker: TestApp;

const exchange = (
  subjectToken: string,
): Promise<{ status: number; json: Record<string, unknown> }> =>
  postToken(
    broker.url,
    exchangeForm({
      grant_type: TOKEN_EXCHANGE,
      subject_token_type: JWT_TYPE,
      subject_token: subjectToken,
      resource: 'demo',
    }),
  );

describe.skipIf(skipSoftHsm())('keys: exchanges signed in the HSM', () => {
  beforeAll(async () => {
    token = createSoftHsmToken({ label: 'broker' });
    broker = await startTestApp(
      {
        keys: {
          provider: 'pkcs11',
          module: token.module,
          tokenLabel: 'broker',
          pinEnv: PIN_ENV,
          algorithms: ['ES256', 'RS256'],
        },
      },
      { env: { ...process.env, [PIN_ENV]: token.pin } },
    );
  });
  afterAll(async () => {
    await broker?.close();
    token?.cleanup();
  });

  it('ok/exchanges-signed-in-the-hsm-verify-against-the-jwks', async () => {
    const jwks = createRemoteJWKSet(new URL(`${broker.url}/.well-known/jwks.json`));
    const published = (await (await fetch(`${broker.url}/.well-known/jwks.json`)).json()) as {
      keys: Array<{ kid: string; alg: string; use: string }>;
    };
    expect(published.keys.map((key) => [key.alg, key.use]).sort()).toEqual([
      ['ES256', 'sig'],
      ['RS256', 'sig'],
    ]);
    for (const serviceAccount of ['a', 'b', 'c']) {
      const { status, json } = await exchange(await broker.devToken('default', serviceAccount));
      expect(status).toBe(200);
      const issued = json.access_token as string;
      const { payload } = await jwtVerify(issued, jwks, { issuer: broker.url, audience: 'demo' });
      expect(payload.sub).toBe(`system:serviceaccount:default:${serviceAccount}`);
      expect(published.keys.find((key) => key.alg === 'ES256')?.kid).toBe(
        decodeProtectedHeader(issued).kid,
      );
    }
    expect(existsSync(join(broker.dir, 'keys'))).toBe(false);
  });

  it('ok/no-ca-key-is-generated-on-the-token-until-an-operator-sets-up-the-ca', () => {
    const labels = execFileSync(
      'pkcs11-tool',
      [
        '--module',
        token.module,
        '--token-label',
        'broker',
        '--login',
        '--pin',
        token.pin,
        '--list-objects',
      ],
      {
        env: process.env,
        encoding: 'utf8',
      },
    );
    expect(labels).toContain('tessera:jwt:ES256');
    expect(labels).not.toContain('x509-ca');
  });

  it('ok/exchanges-continue-after-sessions-closed-behind-the-broker', async () => {
    const other = new pkcs11js.PKCS11();
    other.load(token.module);
    try {
      other.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK });
    } catch (error) {
      if (
        !(error instanceof Error) ||
        !error.message.startsWith('CKR_CRYPTOKI_ALREADY_INITIALIZED')
      )
        throw error;
    }
    const slot = other
      .C_GetSlotList(true)
      .find((candidate) => other.C_GetTokenInfo(candidate).label.trim() === 'broker') as Buffer;
    other.C_CloseAllSessions(slot);
    const jwks = createRemoteJWKSet(new URL(`${broker.url}/.well-known/jwks.json`));
    const results = await Promise.all(
      ['d', 'e', 'f', 'g'].map(async (serviceAccount) =>
        exchange(await broker.devToken('default', serviceAccount)),
      ),
    );
    expect(results.map((result) => result.status)).toEqual([200, 200, 200, 200]);
    for (const result of results)
      await jwtVerify(result.json.access_token as string, jwks, {
        issuer: broker.url,
        audience: 'demo',
      });
    const ready = await fetch(`${broker.url}/readyz`);
    expect(ready.status).toBe(200);
    expect(broker.logs.text()).not.toContain(token.pin);
  });
});
