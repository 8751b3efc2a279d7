import type { JWK } from 'jose';
import type { Config } from '../../config/index.js';
import { isTesseraError, temporarilyUnavailable } from '../../errors.js';
import type { JwsAlgorithm, KeyProvider, SigningKey } from '../../keys/types.js';
import type { Logger } from '../../observability/index.js';
import { buildTrustBundle, type TrustBundle } from './bundle.js';
import { createSelfSignedCa } from './ca-setup.js';
import { caDirectory, readStoredCa, writeStoredCa } from './ca-store.js';
import { verifyCsr } from './csr.js';
import { toPem } from './der.js';
import { issuerStateFor, type IssuerState } from './issuer-state.js';
import { encodeLeaf } from './leaf-der.js';
import { buildLeafProfile, type LeafModifier, type LeafValidator, type SvidRequest } from './pipeline.js';

export interface IssuedSvid {
  certificatePem: string;
  /** Leaf first, then intermediates; the root is excluded. */
  chainPem: string[];
  /** Root certificates. */
  trustBundlePem: string[];
  /** Unix seconds. */
  expiresAt: number;
}

export interface X509Authority {
  /** CSR checks → template → modifiers → validators → SPIFFE enforcers → sign. */
  issueSvid(request: SvidRequest): Promise<IssuedSvid>;
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

/**
 * The X.509-SVID issuer. Never throws at start-up: without a CA (or with the HSM down) it
 * reports not ready and answers `temporarily_unavailable` until a retry succeeds.
 *
 * @example
 *   const ca = await createX509Authority({ provider, config: config.x509, keysDir: config.keys.dir, logger });
 *   const svid = await ca.issueSvid({ csr, spiffeId: 'spiffe://example.org/ns/a/sa/b', dnsNames: [], ttlSeconds: 3600 });
 */
export async function createX509Authority(options: X509AuthorityOptions): Promise<X509Authority> {
  const { provider, config, logger } = options;
  const now = options.now ?? Date.now;
  const nowSeconds = () => Math.floor(now() / 1000);
  const dir = caDirectory(config.dir, options.keysDir);
  const autoInit = options.autoInit ?? provider.kind === 'local';
  const algorithm = options.algorithm ?? 'ES256';

  let state: IssuerState | undefined;
  let problem = 'the X.509 CA is not initialised (run `tessera ca init` or `tessera ca import`)';
  let loading: Promise<void> | undefined;
  let lastAttempt = -Infinity;

  const load = async (): Promise<void> => {
    lastAttempt = now();
    let stored: Awaited<ReturnType<typeof readStoredCa>>;
    try {
      stored = await readStoredCa(dir);
    } catch (error) {
      problem = 'the X.509 CA is misconfigured';
      logger.error({ err: error, dir }, 'X.509 CA unusable');
      return;
    }
    if (!stored && !autoInit) {
      // Touch no key until an operator sets the CA up: an HSM gets no key nobody asked for.
      logger.warn({ dir }, 'no X.509 CA: x509-svid requests fail until `tessera ca init` or `tessera ca import`');
      return;
    }
    let key: SigningKey;
    try {
      key = await provider.namedKey(CA_KEY_NAME, algorithm);
    } catch (error) {
      problem = 'the X.509 CA key is unavailable';
      logger.error({ err: error, provider: provider.kind }, 'X.509 CA key unavailable');
      return;
    }
    try {
      if (!stored) {
        stored = await createSelfSignedCa({ key, trustDomain: config.trustDomain, ttlSeconds: config.caTtl, now: nowSeconds() });
        await writeStoredCa(dir, stored);
        logger.info({ dir, trustDomain: config.trustDomain }, 'created a self-signed X.509 CA (no CA existed; provider local)');
      }
      state = issuerStateFor(stored, key);
      logger.info({ dir, subject: state.subject, notAfter: state.validity.notAfter, kid: key.kid }, 'X.509 CA loaded');
    } catch (error) {
      problem = 'the X.509 CA is misconfigured';
      logger.error({ err: error, dir }, 'X.509 CA unusable');
    }
  };

  const current = async (): Promise<IssuerState | undefined> => {
    if (state) return state;
    if (!loading && now() - lastAttempt >= RETRY_MS) loading = load().finally(() => (loading = undefined));
    await loading;
    return state;
  };

  await current();

  return {
    async issueSvid(request) {
      const issuer = await current();
      if (!issuer) throw temporarilyUnavailable(problem);
      const csr = verifyCsr(request.csr);
      const profile = buildLeafProfile(
        { request, csr, now: nowSeconds(), trustDomain: config.trustDomain, ca: issuer.validity },
        { modifiers: options.modifiers, validators: options.validators },
      );
      let der: Uint8Array;
      try {
        der = await encodeLeaf(profile, csr, issuer.parts);
      } catch (error) {
        if (isTesseraError(error)) throw error;
        throw temporarilyUnavailable('the X.509 CA key is unavailable', { cause: error });
      }
      logger.debug({ spiffeId: profile.uris[0], dnsNames: profile.dnsNames, notAfter: profile.notAfter, key: csr.keyDescription }, 'x509-svid issued');
      const certificatePem = toPem(der);
      return { certificatePem, chainPem: [certificatePem, ...issuer.intermediatesPem], trustBundlePem: issuer.rootsPem, expiresAt: profile.notAfter };
    },
    async trustBundle(jwtKeys = []) {
      const issuer = await current();
      return buildTrustBundle(issuer?.roots ?? [], jwtKeys);
    },
    notAfter: () => state?.validity.notAfter,
    ready() {
      // Not ready yet: start a (rate-limited) retry so /readyz heals without traffic.
      if (!state) void current();
      return state !== undefined;
    },
  };
}
