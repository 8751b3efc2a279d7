import { describe, expect, it } from 'vitest';
import {
  TOKEN_TYPE_ACCESS_TOKEN,
  TOKEN_TYPE_JWT,
  TOKEN_TYPE_X509_SVID,
} from '../../../src/constants.js';
import { createIssuers } from '../../../src/issuers/index.js';
import type { X509Authority } from '../../../src/issuers/x509/index.js';
import type { KeyProvider } from '../../../src/keys/types.js';

const keys = { signingKey: () => Promise.reject(new Error('not used')) } as unknown as KeyProvider;
const deps = { keys, issuer: () => 'https://sts.example.com', now: () => 0 };
const x509 = { kind: 'x509-svid' } as unknown as X509Authority;

describe('createIssuers', () => {
  it('ok/one-issuer-per-requested-token-type', () => {
    const issuers = createIssuers({ ...deps, x509 });
    const row = (type: string) => {
      const registered = issuers.get(type);
      return (
        registered && {
          tokenType: registered.tokenType,
          bearer: registered.bearer,
          kind: registered.issuer.kind,
        }
      );
    };
    expect([row(TOKEN_TYPE_ACCESS_TOKEN), row(TOKEN_TYPE_JWT), row(TOKEN_TYPE_X509_SVID)]).toEqual([
      { tokenType: TOKEN_TYPE_ACCESS_TOKEN, bearer: 'Bearer', kind: 'jwt' },
      { tokenType: TOKEN_TYPE_JWT, bearer: 'N_A', kind: 'jwt' },
      { tokenType: TOKEN_TYPE_X509_SVID, bearer: 'N_A', kind: 'x509-svid' },
    ]);
    expect(issuers.get(TOKEN_TYPE_X509_SVID)?.issuer).toBe(x509);
    expect(issuers.get(TOKEN_TYPE_JWT)?.issuer).toBe(issuers.get(TOKEN_TYPE_ACCESS_TOKEN)?.issuer);
  });

  it('fail/no-x509-issuer-without-an-authority', () => {
    expect([...createIssuers(deps).keys()].sort()).toEqual(
      [TOKEN_TYPE_ACCESS_TOKEN, TOKEN_TYPE_JWT].sort(),
    );
  });
});
