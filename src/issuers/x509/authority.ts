import type { JWK } from 'jose';
import type { Config } from '../../config/index.js';
import { isTesseraError, temporarilyUnavailable } from '../../errors.js';
import type { JwsAlgorithm, KeyProvider, SigningKey } from '../../keys/index.js';
import type { Logger } from '../../observability/index.js';
import type { IssuedCredential, Issuer, SvidFields, SvidRequest } from '../types.js';
import { buildTrustBundle, type TrustBundle } from './bundle.js';
import { createSelfSignedCa } from './ca-setup.js';
import { caDirectory, createStoredCa, readStoredCa, type StoredCa } from './ca-store.js';
import { verifyCsr } from './csr.js';
import { toPem } from './der.js';
import { issuerStateFor, type IssuerState } from './issuer-state.js';
import { buildLeafProfile, type LeafModifier, type LeafValidator } from './pipeline.js';

/**
 * The X.509-SVID issuer (`issue`: CSR checks → template → modifiers → validators → SPIFFE
 * enforcers → sign), and the CA it signs with.
 */
export interface X509Authority extends Issuer<'x509-svid'> {
  issue(request: SvidRequest): Promise<IssuedCredential<SvidFields>>;
  /** Roots as PEM and the SPIFFE bundle; `jwtKeys` join it as `use: jwt-svid`. Empty X.509 part while no CA. */
  trustBundle(jwtKeys?: JWK[]): Promise<TrustBundle>;
  /** A CA is loaded and its key was reachable. */
  ready(): boolean;
  /** Unix seconds: the earliest notAfter of the CA certificate and its chain; undefined while no CA is loaded. */
  notAfter(): number | undefined;
}

export interface X509AuthorityOptions {
  provider: KeyProvider;
  config: Config['x509'];
  /** `keys.dir`: the CA directory defaults to `ca/` beside it. */
  keysDir?: string;
  logger: Logger;
  /** Milliseconds since the epoch. */
  now?: () => number;
  /** The CA key's algorithm (default ES256). */
  algorithm?: Extract<JwsAlgorithm, 'ES256' | 'RS256'>;
  /** Create a self-signed CA when none exists (default: only with provider `local`). */
  autoInit?: boolean;
  modifiers?: readonly LeafModifier[];
  validators?: readonly LeafValidator[];
}

export const CA_KEY_NAME = 'x509-ca';
/** While no CA is usable, loading is retried at most this often (e.g. after `ca import`). */
const RETRY_MS = 5_000;
const NOT_INITIALISED =
  'the X.509 CA is not initialised (run `tessera ca init` or `tessera ca import`)';

interface CaLoader {
  /** The loaded CA, loading it (at most every RETRY_MS) while there is none. */
  current(): Promise<IssuerState | undefined>;
  /** The CA as loaded so far, without trying again. */
  loaded(): IssuerState | undefined;
  /** Why there is no CA, for the client (no path, no key detail). */
  problem(): string;
}

/**
 * Loads the CA from `x509.dir` with the provider's `x509-ca` key; with `autoInit`, creates a
 * self-signed one first. A failure is logged and remembered, never thrown.
 */
function createCaLoader(options: X509AuthorityOptions, dir: string, now: () => number): CaLoader {
  const { provider, config, logger } = options;
  const autoInit = options.autoInit ?? provider.kind === 'local';
  const algorithm = options.algorithm ?? 'ES256';
  let state: IssuerState | undefined;
  let problem = NOT_INITIALISED;
  let loading: Promise<void> | undefined;
  let lastAttempt = -Infinity;

  const unusable = (error: unknown) => {
    problem = 'the X.509 CA is misconfigured';
    logger.error({ err: error, dir }, 'X.509 CA unusable');
  };

  const signingKey = async (): Promise<SigningKey | undefined> => {
    try {
      return await provider.namedKey(CA_KEY_NAME, algorithm);
    } catch (error) {
      problem = 'the X.509 CA key is unavailable';
      logger.error({ err: error, provider: provider.kind }, 'X.509 CA key unavailable');
      return undefined;
    }
  };

  const selfSigned = async (key: SigningKey): Promise<StoredCa> => {
    const created = await createSelfSignedCa({
      key,
      trustDomain: config.trustDomain,
      ttlSeconds: config.caTtl,
      now: Math.floor(now() / 1000),
    });
    if (await createStoredCa(dir, created.certificate)) {
      logger.info(
        { dir, trustDomain: config.trustDomain },
        'created a self-signed X.509 CA (no CA existed; provider local)',
      );
      return created;
    }
    // Another replica sharing the directory created one first: every replica serves that one.
    const theirs = await readStoredCa(dir);
    if (!theirs) throw new Error(`${dir}: a CA was created there and removed again`);
    return theirs;
  };

  const load = async (): Promise<void> => {
    lastAttempt = now();
    let stored: StoredCa | undefined;
    try {
      stored = await readStoredCa(dir);
    } catch (error) {
      unusable(error);
      return;
    }
    if (!stored && !autoInit) {
      // Touch no key until an operator sets the CA up: an HSM gets no key nobody asked for.
      logger.warn(
        { dir },
        'no X.509 CA: x509-svid requests fail until `tessera ca init` or `tessera ca import`',
      );
      return;
    }
    const key = await signingKey();
    if (!key) return;
    try {
      state = issuerStateFor(stored ?? (await selfSigned(key)), key);
      logger.info(
        { dir, subject: state.subject, notAfter: state.validity.notAfter, kid: key.kid },
        'X.509 CA loaded',
      );
    } catch (error) {
      unusable(error);
    }
  };

  return {
    async current() {
      if (state) return state;
      if (!loading && now() - lastAttempt >= RETRY_MS)
        loading = load().finally(() => (loading = undefined));
      await loading;
      return state;
    },
    loaded: () => state,
    problem: () => problem,
  };
}

/**
 * The X.509-SVID issuer. Never throws at start-up: without a CA (or with the HSM down) it
 * reports not ready and answers `temporarily_unavailable` until a retry succeeds.
 *
 * @example
 *   const ca = await createX509Authority({ provider, config: config.x509, keysDir: config.keys.dir, logger });
 *   const svid = await ca.issue({ csr, spiffeId: 'spiffe://example.org/ns/a/sa/b', dnsNames: [], ttlSeconds: 3600 });
 */
export async function createX509Authority(options: X509AuthorityOptions): Promise<X509Authority> {
  const { config, logger } = options;
  const now = options.now ?? Date.now;
  const ca = createCaLoader(options, caDirectory(config.dir, options.keysDir), now);
  await ca.current();
  const pipeline = { modifiers: options.modifiers, validators: options.validators };

  return {
    kind: 'x509-svid',
    async issue(request) {
      const issuer = await ca.current();
      if (!issuer) throw temporarilyUnavailable(ca.problem(), { reason: 'ca_unavailable' });
      const csr = verifyCsr(request.csr);
      // One reading of the clock: a second ticking over during issuance must not shorten expires_in to 599.
      const issuedAt = Math.floor(now() / 1000);
      const profile = buildLeafProfile(
        { request, csr, now: issuedAt, trustDomain: config.trustDomain, ca: issuer.validity },
        pipeline,
      );
      let der: Uint8Array;
      try {
        der = await issuer.encodeLeaf(profile, csr);
      } catch (error) {
        if (isTesseraError(error)) throw error;
        throw temporarilyUnavailable('the X.509 CA key is unavailable', {
          reason: 'ca_unavailable',
          cause: error,
        });
      }
      logger.debug(
        {
          spiffeId: profile.uris[0],
          dnsNames: profile.dnsNames,
          notAfter: profile.notAfter,
          key: csr.keyDescription,
        },
        'x509-svid issued',
      );
      const certificate = toPem(der);
      return {
        fields: {
          access_token: certificate,
          expires_in: Math.max(0, Math.min(request.ttlSeconds, profile.notAfter - issuedAt)),
          certificate,
          certificate_chain: [certificate, ...issuer.intermediatesPem],
          trust_bundle: issuer.rootsPem,
        },
        expiresAt: profile.notAfter,
      };
    },
    async trustBundle(jwtKeys = []) {
      const issuer = await ca.current();
      return buildTrustBundle(issuer?.roots ?? [], jwtKeys);
    },
    notAfter: () => ca.loaded()?.validity.notAfter,
    ready() {
      // Not ready yet: start a (rate-limited) retry so /readyz heals without traffic.
      if (!ca.loaded()) void ca.current();
      return ca.loaded() !== undefined;
    },
  };
}
