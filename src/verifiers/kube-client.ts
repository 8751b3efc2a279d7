import { createRequire } from 'node:module';
import type * as KubeClientModule from '@kubernetes/client-node';

type KubeClientLibrary = typeof KubeClientModule;

let library: KubeClientLibrary | undefined;

/**
 * `@kubernetes/client-node`, loaded the first time TokenReview or pod attestation needs it. It is
 * most of what a broker loads: 21 MiB of V8 heap out of 37 MiB for the whole app, and 0.7 s of
 * its start (`--expose-gc` and `require` on Node 24), which a broker verifying by JWKS alone
 * never needs, and a smaller live heap is a shorter mark-compact pause under load. Loaded with
 * `require` (of an ES module), so a cluster's kubeconfig is still read, and refused, at start.
 */
export function kubeClient(): KubeClientLibrary {
  library ??= createRequire(import.meta.url)('@kubernetes/client-node') as KubeClientLibrary;
  return library;
}
