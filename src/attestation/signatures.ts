import type { Logger } from '../observability/index.js';
import { verifyImage, type SigningKey, type SignatureVerdict } from './cosign.js';
import { parseDigestReference } from './image.js';
import { createLookupCache } from './lookup-cache.js';
import { RegistryError, type RegistryClient } from './registry.js';

/**
 * `kubernetes.io/pod/image/signed-by`: the key names whose signature verifies for every image of
 * a pod. Verdicts are cached by repository and digest (a digest never changes): a signature found
 * stays found for hours; "unsigned" is re-checked after a minute (an image may be signed after it
 * was pushed); a registry that cannot answer makes the image unsigned for a few seconds, is logged
 * and counted, and is never an error for the exchange.
 */
export interface SignatureChecker {
  signedBy(images: readonly string[]): Promise<string[]>;
}

const SIGNED_TTL_MS = 6 * 3600_000;
const UNSIGNED_TTL_MS = 60_000;
const FAILED_TTL_MS = 5_000;
/** One image's whole check (manifest and every payload read) ends by then, whatever each read's own limit. */
const CHECK_DEADLINE_MS = 10_000;

type Cached = SignatureVerdict & { failed?: boolean };

export function createSignatureChecker(options: {
  registry: RegistryClient;
  keys: readonly SigningKey[];
  logger: Logger;
  now: () => number;
  onCheck?: (result: 'signed' | 'unsigned' | 'error') => void;
  maxEntries?: number;
  deadlineMs?: number;
}): SignatureChecker {
  const ttlOf = (verdict: Cached) =>
    verdict.failed ? FAILED_TTL_MS : verdict.kind === 'signed' ? SIGNED_TTL_MS : UNSIGNED_TTL_MS;
  const verdicts = createLookupCache<Cached>({
    ttlMs: ttlOf,
    max: options.maxEntries ?? 10_000,
    now: options.now,
  });

  function verdictFor(image: string): Promise<Cached> {
    const ref = parseDigestReference(image);
    if (!ref) return Promise.resolve({ kind: 'unsigned' });
    return verdicts.get(`${ref.repository}@${ref.digest}`, async () => {
      try {
        let timer: NodeJS.Timeout | undefined;
        const deadline = new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new RegistryError('timeout', 'signature check took too long')),
            options.deadlineMs ?? CHECK_DEADLINE_MS,
          );
        });
        const verdict = await Promise.race([
          verifyImage(options.registry, options.keys, ref),
          deadline,
        ]).finally(() => clearTimeout(timer));
        options.onCheck?.(verdict.kind);
        return verdict;
      } catch (error) {
        options.onCheck?.('error');
        const reason =
          error instanceof RegistryError
            ? `${error.kind}: ${error.message}`
            : 'malformed signature manifest';
        options.logger.warn(
          { registry: ref.registry, repository: ref.repository, digest: ref.digest, reason },
          'image signature check failed; the image counts as unsigned',
        );
        return { kind: 'unsigned', failed: true };
      }
    });
  }

  return {
    async signedBy(images) {
      if (images.length === 0 || options.keys.length === 0) return [];
      const results = await Promise.all(images.map(verdictFor));
      let names = options.keys.map((key) => key.name);
      for (const result of results) {
        const signed = result.kind === 'signed' ? result.keys : [];
        names = names.filter((name) => signed.includes(name));
      }
      return names;
    },
  };
}
