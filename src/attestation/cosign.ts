import { createHash, createPublicKey, verify, type KeyObject } from 'node:crypto';
import { z } from 'zod';
import { normaliseRepository, type ImageDigestRef } from './image.js';
import { MAX_PAYLOAD_BYTES, type RegistryClient } from './registry.js';

/**
 * cosign signatures of one image (sigstore/cosign `specs/SIGNATURE_SPEC.md`, tag-based
 * discovery): the manifest tagged `sha256-<hex>.sig` in the image's repository lists one layer per
 * signature, each a simple-signing payload blob with its base64 DER ECDSA signature in the
 * `dev.cosignproject.cosign/signature` annotation. A key counts when its signature over the
 * payload bytes verifies AND the payload names this exact manifest digest and repository.
 */

const SIMPLE_SIGNING_TYPE = 'application/vnd.dev.cosign.simplesigning.v1+json';
const SIGNATURE_ANNOTATION = 'dev.cosignproject.cosign/signature';
const COSIGN_PAYLOAD_TYPE = 'cosign container image signature';
/** More layers than this in a signature manifest is not a signature manifest. */
const MAX_LAYERS = 64;
const DIGEST = /^sha256:[a-f0-9]{64}$/;

export interface SigningKey {
  name: string;
  key: KeyObject;
}

/** Parse a PEM public key; only ECDSA P-256 is accepted. */
export function parseSigningKey(name: string, pem: string): SigningKey {
  const key = createPublicKey(pem);
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    throw new Error(`imageSignatures.keys.${name}: must be an ECDSA P-256 public key`);
  }
  return { name, key };
}

export type SignatureVerdict = { kind: 'signed'; keys: string[] } | { kind: 'unsigned' };

interface Layer {
  digest: string;
  size: number;
  signature: string;
}

const manifestSchema = z.object({
  schemaVersion: z.literal(2),
  layers: z.array(z.unknown()).max(MAX_LAYERS),
});
/** A cosign signature layer; any other layer is skipped. */
const signatureLayerSchema = z.object({
  mediaType: z.literal(SIMPLE_SIGNING_TYPE),
  digest: z.string().regex(DIGEST),
  size: z.number().int().min(0).max(MAX_PAYLOAD_BYTES),
  annotations: z.object({ [SIGNATURE_ANNOTATION]: z.string() }),
});

/** The signature layers of a manifest; throws on anything that is not a well-formed manifest. */
function signatureLayers(body: Buffer): Layer[] {
  const manifest = manifestSchema.safeParse(JSON.parse(body.toString('utf8')));
  if (!manifest.success)
    throw new Error(`not a schemaVersion 2 manifest with at most ${MAX_LAYERS} layers`);
  return manifest.data.layers.flatMap((candidate) => {
    const layer = signatureLayerSchema.safeParse(candidate);
    return layer.success
      ? [
          {
            digest: layer.data.digest,
            size: layer.data.size,
            signature: layer.data.annotations[SIGNATURE_ANNOTATION],
          },
        ]
      : [];
  });
}

/** The simple-signing payload names `image` exactly: its digest, its repository, cosign's type. */
function payloadNames(payload: Buffer, image: ImageDigestRef): boolean {
  let value: unknown;
  try {
    value = JSON.parse(payload.toString('utf8'));
  } catch {
    return false;
  }
  const critical = (value as { critical?: Record<string, unknown> } | null)?.critical;
  if (!critical || critical.type !== COSIGN_PAYLOAD_TYPE) return false;
  const digest = (critical.image as Record<string, unknown> | undefined)?.[
    'docker-manifest-digest'
  ];
  const reference = (critical.identity as Record<string, unknown> | undefined)?.[
    'docker-reference'
  ];
  if (digest !== image.digest || typeof reference !== 'string') return false;
  // cosign writes the repository; a tag or digest after it is tolerated, another repository is not.
  const named = reference.split('@')[0] as string;
  const slash = named.lastIndexOf('/');
  const colon = named.indexOf(':', slash + 1);
  const repository = normaliseRepository(colon >= 0 ? named.slice(0, colon) : named);
  return (
    repository !== undefined && `${repository.registry}/${repository.path}` === image.repository
  );
}

function signatureVerifies(key: KeyObject, payload: Buffer, signature: string): boolean {
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(signature) || signature.length > 512) return false;
  try {
    return verify('sha256', payload, { key, dsaEncoding: 'der' }, Buffer.from(signature, 'base64'));
  } catch {
    return false;
  }
}

/**
 * The names of `keys` whose signature verifies for `image`. Throws a RegistryError (or a parse
 * error) when the registry cannot give a usable answer; the caller decides what that means.
 */
export async function verifyImage(
  registry: RegistryClient,
  keys: readonly SigningKey[],
  image: ImageDigestRef,
): Promise<SignatureVerdict> {
  const tag = `${image.digest.replace(':', '-')}.sig`;
  const manifest = await registry.manifest(image.registry, image.path, tag);
  if (!manifest) return { kind: 'unsigned' };
  const layers = signatureLayers(manifest);
  const names = new Set<string>();
  for (const layer of layers) {
    const pending = keys.filter((key) => !names.has(key.name));
    if (pending.length === 0) break;
    const payload = await registry.blob(
      image.registry,
      image.path,
      layer.digest,
      MAX_PAYLOAD_BYTES,
    );
    // Content addressing: the blob must be the bytes its digest names.
    if (
      payload.length !== layer.size ||
      `sha256:${createHash('sha256').update(payload).digest('hex')}` !== layer.digest
    )
      continue;
    if (!payloadNames(payload, image)) continue;
    for (const key of pending)
      if (signatureVerifies(key.key, payload, layer.signature)) names.add(key.name);
  }
  return names.size > 0
    ? { kind: 'signed', keys: keys.filter((key) => names.has(key.name)).map((key) => key.name) }
    : { kind: 'unsigned' };
}
