import { readFileSync } from 'node:fs';
import type { ClusterConfig, ImageSignaturesConfig } from '../config/index.js';
import { invalidRequest } from '../errors.js';
import type { Logger, Metrics } from '../observability/index.js';
import type { WorkloadIdentity } from '../verifiers/index.js';
import { parseSigningKey } from './cosign.js';
import { createPodDirectory, type DirectoryOptions, type PodDirectory } from './directory.js';
import { createKubeApi, loadKubeConfig, type KubeApi } from './kube.js';
import { createRegistryClient, type RegistryAccess, type RegistryClient } from './registry.js';
import { createSignatureChecker, type SignatureChecker } from './signatures.js';
import type { PodFacts } from './types.js';

/**
 * Pod attestation, the stage after subject-token verification: for a cluster with
 * `podAttestation`, the pod the token names is read from the cluster (watch-fed cache), and its
 * images, labels, annotations, owner, node labels and image signatures become facts the trust
 * policy can test. Refusals are TesseraErrors: 400 when the pod is gone or replaced (or the token
 * names none), 503 when the cluster cannot answer within the staleness bound.
 */
export interface PodAttestor {
  /** The pod's facts; `undefined` when the identity's cluster does not attest pods. */
  attest(identity: WorkloadIdentity): Promise<PodFacts | undefined>;
  /** Clusters that attest pods. */
  clusters(): string[];
  close(): Promise<void>;
}

export interface PodAttestorOptions {
  clusters: readonly ClusterConfig[];
  imageSignatures?: ImageSignaturesConfig;
  logger: Logger;
  metrics?: Pick<Metrics, 'podLookups' | 'imageSignatureChecks'>;
  now?: () => number;
  env?: NodeJS.ProcessEnv;
  /** Replaces the cluster API client per cluster (tests of faults only). */
  kubeApi?: (cluster: ClusterConfig) => KubeApi;
  /** Replaces the registry client (tests of faults only). */
  registry?: RegistryClient;
  /** Watch tuning (tests shorten the retry pauses). */
  directory?: Pick<DirectoryOptions, 'watch' | 'maxNamespaces' | 'syncWaitMs'>;
  apiTimeoutMs?: number;
}

const API_TIMEOUT_MS = 5_000;

export function createPodAttestor(options: PodAttestorOptions): PodAttestor {
  const now = options.now ?? Date.now;
  const directories = new Map<string, PodDirectory>();
  for (const cluster of options.clusters) {
    if (!cluster.podAttestation) continue;
    const api =
      options.kubeApi?.(cluster) ??
      createKubeApi(loadKubeConfig(cluster), { timeoutMs: options.apiTimeoutMs ?? API_TIMEOUT_MS });
    directories.set(
      cluster.name,
      createPodDirectory({
        cluster: cluster.name,
        api,
        now,
        logger: options.logger,
        ...options.directory,
        onApiCall: (kind, result) =>
          options.metrics?.podLookups.inc({ cluster: cluster.name, kind, result }),
      }),
    );
  }
  const signatures = options.imageSignatures
    ? signatureChecker(options.imageSignatures, options, now)
    : undefined;

  return {
    async attest(identity) {
      const directory = directories.get(identity.cluster);
      if (!directory) return undefined;
      const { namespace, pod } = identity;
      if (!namespace || !pod?.name || !pod.uid) {
        throw invalidRequest(
          'subject_token names no pod: this cluster requires pod-bound service-account tokens',
          {
            reason: 'pod_not_named',
            detail: { cluster: identity.cluster },
          },
        );
      }
      const record = await directory.lookup(namespace, pod.name, pod.uid);
      const [owner, nodeLabels, signedBy] = await Promise.all([
        directory.owner(record),
        directory.nodeLabels(record),
        // An image without a known digest is never signed, so such a pod has no signer.
        signatures ? signatures.signedBy(record.images) : Promise.resolve(undefined),
      ]);
      return {
        images: record.images,
        labels: record.labels,
        annotations: record.annotations,
        owner,
        ...(nodeLabels ? { nodeLabels } : {}),
        ...(signedBy ? { signedBy } : {}),
      };
    },
    clusters: () => [...directories.keys()],
    close() {
      for (const directory of directories.values()) directory.close();
      directories.clear();
      return Promise.resolve();
    },
  };
}

function signatureChecker(
  config: ImageSignaturesConfig,
  options: PodAttestorOptions,
  now: () => number,
): SignatureChecker {
  const keys = Object.entries(config.keys).map(([name, file]) => {
    let pem: string;
    try {
      pem = readFileSync(file, 'utf8');
    } catch (error) {
      throw new Error(
        `imageSignatures.keys.${name}: cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`,
      );
    }
    return parseSigningKey(name, pem);
  });
  const env = options.env ?? process.env;
  const access = new Map<string, RegistryAccess>();
  for (const [host, registry] of Object.entries(config.registries)) {
    let ca: string | undefined;
    if (registry.caFile) {
      try {
        ca = readFileSync(registry.caFile, 'utf8');
      } catch (error) {
        throw new Error(
          `imageSignatures.registries.${host}.caFile: cannot read ${registry.caFile}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`,
        );
      }
    }
    let authorization: string | undefined;
    if (registry.username && registry.passwordEnv) {
      const password = env[registry.passwordEnv];
      if (!password)
        throw new Error(
          `imageSignatures.registries.${host}: environment variable ${registry.passwordEnv} is not set`,
        );
      authorization = `Basic ${Buffer.from(`${registry.username}:${password}`).toString('base64')}`;
    }
    access.set(host, {
      ...(ca ? { ca } : {}),
      insecure: registry.insecure,
      ...(authorization ? { authorization } : {}),
    });
  }
  const registry = options.registry ?? createRegistryClient((host) => access.get(host) ?? {});
  return createSignatureChecker({
    registry,
    keys,
    logger: options.logger,
    now,
    onCheck: (result) => options.metrics?.imageSignatureChecks.inc({ result }),
  });
}
