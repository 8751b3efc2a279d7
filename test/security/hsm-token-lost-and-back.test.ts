import { renameSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  exchangeForm,
  JWT_TYPE,
  postToken,
  startTestApp,
  TOKEN_EXCHANGE,
  type TestApp,
} from '../support/app.js';
import { createSoftHsmToken, skipSoftHsm, type SoftHsmToken } from '../support/softhsm.js';
import { waitFor } from '../support/wait.js';

/**
 * An HSM that goes away (token pulled, network HSM partitioned) and comes back: while signing
 * fails the replica says it is not ready, and once the token is back it recovers by itself,
 * without a restart. SoftHSM2 reads its tokens from the directory in its config file, so moving
 * that directory away and back is the token leaving and returning.
 */
const PIN_ENV = 'TESSERA_TEST_PKCS11_PIN';
let token: SoftHsmToken;
let broker: TestApp;

const exchange = async () =>
  postToken(
    broker.url,
    exchangeForm({
      grant_type: TOKEN_EXCHANGE,
      subject_token_type: JWT_TYPE,
      subject_token: await broker.devToken('default', 'demo'),
      resource: 'demo',
    }),
  );
const readiness = async () => (await fetch(`${broker.url}/readyz`)).status;

describe.skipIf(skipSoftHsm())('HSM token lost and back', () => {
  beforeAll(async () => {
    token = createSoftHsmToken({ label: 'flaky' });
    broker = await startTestApp(
      {
        keys: {
          provider: 'pkcs11',
          module: token.module,
          tokenLabel: 'flaky',
          pinEnv: PIN_ENV,
          algorithms: ['ES256'],
        },
      },
      { env: { ...process.env, [PIN_ENV]: token.pin } },
    );
  });
  afterAll(async () => {
    await broker?.close();
    token?.cleanup();
  });

  it('fail/not-ready-while-the-token-is-gone-then-recovers-by-itself', async () => {
    expect((await exchange()).status).toBe(200);
    expect(await readiness()).toBe(200);

    const tokens = join(token.dir, 'tokens');
    renameSync(tokens, `${tokens}-away`);
    try {
      // Noticed without any exchange failing first.
      await waitFor(
        async () => (await readiness()) === 503,
        '/readyz to report the lost token',
        10_000,
      );
      const lost = await exchange();
      expect(lost.status).toBe(503);
      expect(lost.json).toEqual({
        error: 'temporarily_unavailable',
        error_description: 'signing key unavailable',
      });
      expect(await readiness()).toBe(503);
    } finally {
      renameSync(`${tokens}-away`, tokens);
    }

    await waitFor(
      async () => (await readiness()) === 200,
      '/readyz to report the token back',
      15_000,
    );
    expect((await exchange()).status).toBe(200);
    expect(broker.logs.text()).not.toContain(token.pin);
  });
});
