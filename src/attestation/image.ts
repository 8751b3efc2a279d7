/**
 * Container image references as the kubelet reports them, normalised to one form:
 * `<registry>/<path>@sha256:<hex>`. containerd reports `docker.io/library/nginx@sha256:…`,
 * dockershim `docker-pullable://nginx@sha256:…`; both become the same string, so a policy
 * written against one runtime holds on the other.
 */

const DIGEST = /^sha256:[a-f0-9]{64}$/;
const PATH_COMPONENT = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$/;
const REGISTRY =
  /^(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*(?::[0-9]{1,5})?$/;
const MAX_REFERENCE = 512;

export interface ImageDigestRef {
  /** `registry.example.com/team/app`, `docker.io/library/nginx`. */
  repository: string;
  /** `registry.example.com`, `docker.io`, `127.0.0.1:5000`. */
  registry: string;
  /** Path within the registry: `team/app`. */
  path: string;
  /** `sha256:<64 hex>`. */
  digest: string;
}

/** Normalise a repository (no tag, no digest); `undefined` when it is not a valid reference. */
export function normaliseRepository(value: string): { registry: string; path: string } | undefined {
  if (value.length === 0 || value.length > MAX_REFERENCE) return undefined;
  const parts = value.split('/');
  const first = parts[0] as string;
  // Docker's rule: the first component is a registry when it looks like a host.
  const hasRegistry =
    parts.length > 1 && (first.includes('.') || first.includes(':') || first === 'localhost');
  let registry = hasRegistry ? first.toLowerCase() : 'docker.io';
  let pathParts = hasRegistry ? parts.slice(1) : parts;
  if (registry === 'index.docker.io' || registry === 'registry-1.docker.io') registry = 'docker.io';
  if (registry === 'docker.io' && pathParts.length === 1) pathParts = ['library', ...pathParts];
  if (
    !REGISTRY.test(registry) ||
    pathParts.length === 0 ||
    !pathParts.every((part) => PATH_COMPONENT.test(part))
  )
    return undefined;
  return { registry, path: pathParts.join('/') };
}

/**
 * `imageID` (or any reference) → repository and digest, when it names a manifest digest with a
 * repository. `sha256:…` alone (an image ID, not a manifest digest), a tag-only reference or
 * anything malformed gives `undefined`: the image's digest is then unknown.
 */
export function parseDigestReference(value: unknown): ImageDigestRef | undefined {
  if (typeof value !== 'string' || value.length > MAX_REFERENCE) return undefined;
  const bare = value.replace(/^docker-pullable:\/\//, '');
  if (bare.includes('://')) return undefined;
  const at = bare.lastIndexOf('@');
  if (at <= 0) return undefined;
  const digest = bare.slice(at + 1);
  if (!DIGEST.test(digest)) return undefined;
  // A reference may carry both a tag and a digest (`app:1.2@sha256:…`): the digest is what ran.
  const named = bare.slice(0, at);
  const lastSlash = named.lastIndexOf('/');
  const colon = named.indexOf(':', lastSlash + 1);
  const repository = normaliseRepository(colon >= 0 ? named.slice(0, colon) : named);
  if (!repository) return undefined;
  return { ...repository, repository: `${repository.registry}/${repository.path}`, digest };
}

/** The condition-key form: `<repository>@sha256:<digest>`. */
export const formatImage = (ref: ImageDigestRef): string => `${ref.repository}@${ref.digest}`;

/**
 * A container whose digest is unknown is still listed, as the pod spec names it without any
 * digest, so that `ForAllValues` over the images cannot skip it and a digest pin never matches.
 */
export function unresolvedImage(specImage: unknown): string {
  if (typeof specImage !== 'string' || specImage.length === 0) return 'unknown';
  const withoutDigest = specImage.split('@')[0] as string;
  return withoutDigest.slice(0, MAX_REFERENCE) || 'unknown';
}
