/**
 * What pod attestation adds to a verified identity: facts read from the cluster API (and the
 * image registry), not from the token. Every field is what the cluster said at most
 * {@link MAX_STALENESS_MS} after the last successful contact with its API server.
 */
export interface PodFacts {
  /**
   * Every container's and init container's image as `<repository>@sha256:<digest>`. A container
   * whose running digest is not known (no status yet, a tag-only `imageID`) appears with its image
   * as the pod spec names it, without a digest: a pin by digest never matches it.
   */
  images: string[];
  labels: Record<string, string>;
  annotations: Record<string, string>;
  /** `Deployment/orders`, `StatefulSet/db`, `CronJob/report`, … or `Pod/<name>` without a controller. */
  owner?: string;
  /** Labels of the pod's node; absent when the pod is not scheduled or the node is gone. */
  nodeLabels?: Record<string, string>;
  /** Key names whose cosign signature verifies for every image; absent without `imageSignatures`. */
  signedBy?: string[];
}

/** The part of a Pod the attestor keeps: small, so a watched namespace costs little memory. */
export interface PodRecord {
  name: string;
  namespace: string;
  uid: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  /** The controller reference, when the pod has one. */
  controller?: { kind: string; name: string; uid?: string };
  nodeName?: string;
  images: string[];
  /** Every container has a digest-form image; an incomplete record is re-read once before use. */
  complete: boolean;
}

/** Cached pod data is used for at most this long after the last successful contact with the API server. */
export const MAX_STALENESS_MS = 60_000;
