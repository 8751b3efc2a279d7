import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { Certificate } from '@kubernetes-models/cert-manager/cert-manager.io/v1';
import {
  PrometheusRule,
  ServiceMonitor,
} from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1';
import { Deployment } from 'kubernetes-models/apps/v1';
import {
  ConfigMap,
  Namespace,
  PersistentVolumeClaim,
  Service,
  ServiceAccount,
} from 'kubernetes-models/v1';
import { Ingress, NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { ClusterRole, ClusterRoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import { parseConfig, type Config } from '../../src/config/index.js';
import { loadPolicySet } from '../../src/trust-policies/index.js';

/**
 * Every kustomization under deploy/ builds with `kubectl kustomize` (kustomize v5 here; the
 * files also suit the v2 of Debian's kubectl 1.20), every object passes its API schema, and every
 * overlay is a complete deployment: nothing it references is missing, and the broker's config and
 * policies inside it load.
 */
const DEPLOY = resolve(import.meta.dirname, '../../deploy');

function kubectlMissing(): string | undefined {
  try {
    execFileSync('kubectl', ['version', '--client'], { stdio: 'ignore' });
    return undefined;
  } catch {
    return 'kubectl not found (apt-get install kubernetes-client)';
  }
}
function skipKubectl(): boolean {
  const reason = kubectlMissing();
  if (!reason) return false;
  if (process.env.CI === 'true') throw new Error(`kubectl is required under CI=true: ${reason}`);
  console.warn(`[skipped] kustomize builds: ${reason}`);
  return true;
}

type K8sObject = {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  [key: string]: unknown;
};
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Model = new (data: any) => { validate(): void };
/** The schema of every kind the manifests may hold; any other kind fails the test. */
const MODELS: Record<string, Model> = {
  'v1/Namespace': Namespace,
  'v1/ServiceAccount': ServiceAccount,
  'v1/ConfigMap': ConfigMap,
  'v1/Service': Service,
  'v1/PersistentVolumeClaim': PersistentVolumeClaim,
  'apps/v1/Deployment': Deployment,
  'rbac.authorization.k8s.io/v1/ClusterRole': ClusterRole,
  'rbac.authorization.k8s.io/v1/ClusterRoleBinding': ClusterRoleBinding,
  'networking.k8s.io/v1/Ingress': Ingress,
  'networking.k8s.io/v1/NetworkPolicy': NetworkPolicy,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
  'cert-manager.io/v1/Certificate': Certificate,
  'monitoring.coreos.com/v1/ServiceMonitor': ServiceMonitor,
  'monitoring.coreos.com/v1/PrometheusRule': PrometheusRule,
};

/** Secrets the operator creates by hand (docs/deploy.md); every other one must come from a Certificate. */
const OPERATOR_SECRETS = new Set(['tessera-cache', 'tessera-hsm', 'tessera-redis']);

const kustomizations = readdirSync(DEPLOY, { recursive: true, withFileTypes: true })
  .filter((entry) => entry.isFile() && entry.name === 'kustomization.yaml')
  .map((entry) => relative(DEPLOY, entry.parentPath));
const overlays = kustomizations.filter((dir) => dir.startsWith('overlays/'));

function build(dir: string): K8sObject[] {
  const output = execFileSync('kubectl', ['kustomize', join(DEPLOY, dir)], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return parseAllDocuments(output)
    .map((document) => document.toJS() as K8sObject | null)
    .filter((object): object is K8sObject => object !== null && Object.keys(object).length > 0);
}

const find = (objects: K8sObject[], kind: string, name?: string) =>
  objects.filter(
    (object) => object.kind === kind && (name === undefined || object.metadata.name === name),
  );
const one = (objects: K8sObject[], kind: string, name: string): K8sObject => {
  const found = find(objects, kind, name);
  expect(found, `${kind}/${name}`).toHaveLength(1);
  return found[0] as K8sObject;
};

// Loose views of the objects the checks read.
interface Container {
  name: string;
  ports?: Array<{ name: string; containerPort: number }>;
  env?: Array<{ name: string; valueFrom?: { secretKeyRef?: { name: string } } }>;
  readinessProbe?: { httpGet?: { path: string; port: string } };
  livenessProbe?: { httpGet?: { path: string; port: string } };
  resources?: { requests?: object; limits?: object };
  securityContext?: {
    allowPrivilegeEscalation?: boolean;
    readOnlyRootFilesystem?: boolean;
    capabilities?: { drop?: string[] };
  };
}
interface PodSpec {
  serviceAccountName: string;
  terminationGracePeriodSeconds: number;
  securityContext: { runAsNonRoot?: boolean; fsGroup?: number; fsGroupChangePolicy?: string };
  affinity?: { podAntiAffinity?: unknown };
  containers: Container[];
  initContainers?: Container[];
  volumes: Array<{
    name: string;
    configMap?: { name: string };
    secret?: { secretName: string };
    persistentVolumeClaim?: { claimName: string };
  }>;
}
const podSpec = (deployment: K8sObject) =>
  (deployment.spec as { template: { spec: PodSpec } }).template.spec;

describe.skipIf(skipKubectl())('deploy/ kustomizations', () => {
  it('ok/there-are-a-base-and-the-three-overlays', () => {
    expect(kustomizations).toEqual(
      expect.arrayContaining([
        'base',
        'redis',
        'overlays/local-keys',
        'overlays/pkcs11',
        'overlays/external-redis',
      ]),
    );
  });

  it.each(kustomizations)('ok/%s-builds-and-every-object-passes-its-api-schema', (dir) => {
    const objects = build(dir);
    expect(objects.length).toBeGreaterThan(0);
    for (const object of objects) {
      const key = `${object.apiVersion}/${object.kind}`;
      const Model = MODELS[key];
      expect(Model, `no schema for ${key}`).toBeDefined();
      expect(
        () => new (Model as Model)(object).validate(),
        `${key} ${object.metadata.name}`,
      ).not.toThrow();
      if (
        object.kind !== 'Namespace' &&
        object.kind !== 'ClusterRoleBinding' &&
        object.kind !== 'ClusterRole'
      )
        expect(object.metadata.namespace, `${key} ${object.metadata.name}`).toBe('tessera');
    }
  });

  describe.each(overlays)('%s', (dir) => {
    const objects = build(dir);
    const deployment = one(objects, 'Deployment', 'tessera');
    const pod = podSpec(deployment);
    const broker = pod.containers.find((container) => container.name === 'tessera') as Container;
    const configMapName = pod.volumes.find((volume) => volume.name === 'config')?.configMap
      ?.name as string;
    const config: Config = parseConfig(
      parseYaml(
        (one(objects, 'ConfigMap', configMapName).data as Record<string, string>)[
          'config.yaml'
        ] as string,
      ),
    );
    const portOf = (name: string) =>
      broker.ports?.find((port) => port.name === name)?.containerPort;

    it('ok/config-and-policies-in-the-configmaps-load', () => {
      const policiesName = pod.volumes.find((volume) => volume.name === 'policies')?.configMap
        ?.name as string;
      const files = one(objects, 'ConfigMap', policiesName).data as Record<string, string>;
      const policyDir = mkdtempSync(join(tmpdir(), 'tessera-deploy-policies-'));
      try {
        for (const [name, content] of Object.entries(files))
          writeFileSync(join(policyDir, name), content);
        const set = loadPolicySet(policyDir, { clusters: config.clusters });
        expect(set.roles.size).toBeGreaterThan(0);
      } finally {
        rmSync(policyDir, { recursive: true, force: true });
      }
      expect(config.issuer).toBe('https://sts.example.com');
      expect(config.listen.tls).toBeDefined();
    });

    it('ok/the-deployment-is-hardened-and-drains-within-its-grace-period', () => {
      expect((deployment.spec as { replicas: number }).replicas).toBeGreaterThanOrEqual(2);
      expect(pod.affinity?.podAntiAffinity).toBeDefined();
      expect(pod.securityContext.runAsNonRoot).toBe(true);
      // fsGroup re-applied to every file on each mount would make local key files group-readable.
      if (pod.securityContext.fsGroup !== undefined)
        expect(pod.securityContext.fsGroupChangePolicy).toBe('OnRootMismatch');
      for (const container of [...pod.containers, ...(pod.initContainers ?? [])]) {
        expect(container.securityContext?.readOnlyRootFilesystem, container.name).toBe(true);
        expect(container.securityContext?.allowPrivilegeEscalation, container.name).toBe(false);
        expect(container.securityContext?.capabilities?.drop, container.name).toEqual(['ALL']);
      }
      expect(broker.resources?.requests).toBeDefined();
      expect(broker.resources?.limits).toBeDefined();
      expect(pod.terminationGracePeriodSeconds).toBeGreaterThan(config.lifecycle.drainSeconds + 10);
    });

    it('ok/probes-use-the-admin-listener and ports match the config', () => {
      expect(broker.readinessProbe?.httpGet).toEqual({ path: '/readyz', port: 'admin' });
      expect(broker.livenessProbe?.httpGet).toEqual({ path: '/healthz', port: 'admin' });
      expect(portOf('admin')).toBe(config.adminListen?.port);
      expect(portOf('public')).toBe(config.publicListen?.port);
      expect(portOf('https')).toBe(config.listen.port);
    });

    it('ok/nothing-referenced-is-missing', () => {
      one(objects, 'Namespace', 'tessera');
      one(objects, 'ServiceAccount', pod.serviceAccountName);
      const binding = one(objects, 'ClusterRoleBinding', 'tessera-tokenreview') as K8sObject & {
        roleRef: { name: string };
        subjects: Array<{ name: string }>;
      };
      expect(binding.roleRef.name).toBe('system:auth-delegator');
      expect(binding.subjects.map((subject) => subject.name)).toEqual([pod.serviceAccountName]);
      const certificateSecrets = new Set(
        find(objects, 'Certificate').map(
          (certificate) => (certificate.spec as { secretName: string }).secretName,
        ),
      );
      for (const volume of pod.volumes) {
        if (volume.configMap) one(objects, 'ConfigMap', volume.configMap.name);
        if (volume.persistentVolumeClaim)
          one(objects, 'PersistentVolumeClaim', volume.persistentVolumeClaim.claimName);
        if (volume.secret)
          expect(
            certificateSecrets.has(volume.secret.secretName) ||
              OPERATOR_SECRETS.has(volume.secret.secretName),
            volume.secret.secretName,
          ).toBe(true);
      }
      for (const variable of broker.env ?? []) {
        const secret = variable.valueFrom?.secretKeyRef?.name;
        if (secret) expect(OPERATOR_SECRETS.has(secret), secret).toBe(true);
      }
      const podLabels = (
        deployment.spec as { template: { metadata: { labels: Record<string, string> } } }
      ).template.metadata.labels;
      for (const service of find(objects, 'Service')) {
        const selector = (service.spec as { selector: Record<string, string> }).selector;
        const selected = find(objects, 'Deployment').some((candidate) => {
          const labels = (
            candidate.spec as { template: { metadata: { labels: Record<string, string> } } }
          ).template.metadata.labels;
          return Object.entries(selector).every(([key, value]) => labels[key] === value);
        });
        expect(selected, `Service ${service.metadata.name} selects no pod`).toBe(true);
      }
      expect(podLabels['app.kubernetes.io/name']).toBe('tessera');
      const monitor = one(objects, 'ServiceMonitor', 'tessera') as K8sObject & {
        spec: {
          selector: { matchLabels: Record<string, string> };
          endpoints: Array<{ port: string }>;
        };
      };
      const scraped = find(objects, 'Service').filter((service) =>
        Object.entries(monitor.spec.selector.matchLabels).every(
          ([key, value]) => service.metadata.labels?.[key] === value,
        ),
      );
      expect(scraped.map((service) => service.metadata.name)).toEqual(['tessera-admin']);
      const adminPorts = (
        scraped[0]?.spec as { ports: Array<{ name: string; targetPort: string }> }
      ).ports;
      expect(adminPorts.map((port) => [port.name, port.targetPort])).toEqual([
        [monitor.spec.endpoints[0]?.port, 'admin'],
      ]);
      expect(one(objects, 'PodDisruptionBudget', 'tessera')).toBeDefined();
    });

    it('ok/the-ingress-exposes-only-the-public-listener-with-cert-manager-tls', () => {
      const ingresses = find(objects, 'Ingress') as Array<
        K8sObject & {
          spec: {
            tls: unknown[];
            rules: Array<{
              http: {
                paths: Array<{
                  path: string;
                  backend: { service: { name: string; port: { name: string } } };
                }>;
              };
            }>;
          };
        }
      >;
      expect(ingresses).toHaveLength(1);
      const ingress = ingresses[0] as (typeof ingresses)[number];
      expect(ingress.spec.tls.length).toBeGreaterThan(0);
      expect(
        (ingress.metadata as { annotations?: Record<string, string> }).annotations?.[
          'cert-manager.io/cluster-issuer'
        ],
      ).toBeTruthy();
      const paths = ingress.spec.rules.flatMap((rule) => rule.http.paths);
      expect(paths.map((path) => path.path).sort()).toEqual(['/.well-known/', '/v1/trust-bundle']);
      for (const path of paths) {
        const service = one(objects, 'Service', path.backend.service.name);
        const ports = (service.spec as { ports: Array<{ name: string; targetPort: string }> })
          .ports;
        expect(ports.find((port) => port.name === path.backend.service.port.name)?.targetPort).toBe(
          'public',
        );
      }
    });

    it('ok/network-policies: token endpoint from workload namespaces only, redis from tessera only', () => {
      type Policy = K8sObject & {
        spec: {
          podSelector: { matchLabels: Record<string, string> };
          ingress: Array<{
            ports: Array<{ port: number }>;
            from: Array<{
              namespaceSelector?: { matchLabels: Record<string, string> };
              podSelector?: { matchLabels: Record<string, string> };
            }>;
          }>;
        };
      };
      const policies = find(objects, 'NetworkPolicy') as Policy[];
      const token = policies.filter((policy) =>
        policy.spec.ingress.some((rule) =>
          rule.ports.some((port) => port.port === config.listen.port),
        ),
      );
      expect(token).toHaveLength(1);
      expect(token[0]?.spec.ingress[0]?.from).toEqual([
        { namespaceSelector: { matchLabels: { 'tessera.dev/workloads': 'true' } } },
      ]);
      // Every port of the broker is covered by some policy, so none is open to the whole cluster.
      const covered = new Set(
        policies
          .filter(
            (policy) => policy.spec.podSelector.matchLabels['app.kubernetes.io/name'] === 'tessera',
          )
          .flatMap((policy) =>
            policy.spec.ingress.flatMap((rule) => rule.ports.map((port) => port.port)),
          ),
      );
      for (const port of broker.ports ?? [])
        expect(covered.has(port.containerPort), `port ${port.name}`).toBe(true);
      const redis = find(objects, 'Deployment', 'tessera-redis');
      if (redis.length > 0) {
        const guard = policies.filter(
          (policy) =>
            policy.spec.podSelector.matchLabels['app.kubernetes.io/name'] === 'tessera-redis',
        );
        expect(guard).toHaveLength(1);
        expect(guard[0]?.spec.ingress[0]?.from).toEqual([
          { podSelector: { matchLabels: { 'app.kubernetes.io/name': 'tessera' } } },
        ]);
      }
    });

    it('ok/service-monitor-and-alerts', () => {
      const rule = one(objects, 'PrometheusRule', 'tessera') as K8sObject & {
        spec: { groups: Array<{ rules: Array<{ alert: string; expr: string }> }> };
      };
      const alerts = rule.spec.groups.flatMap((group) => group.rules.map((entry) => entry.alert));
      expect(alerts).toEqual(
        expect.arrayContaining(['TesseraDown', 'TesseraExchangesFailing', 'TesseraJwksStale']),
      );
    });
  });

  it('ok/keys-per-overlay: local keys on a ReadWriteMany claim, pkcs11 with the module mounted and the PIN from a Secret', () => {
    const local = build('overlays/local-keys');
    const claim = one(local, 'PersistentVolumeClaim', 'tessera-keys') as K8sObject & {
      spec: { accessModes: string[] };
    };
    expect(claim.spec.accessModes).toEqual(['ReadWriteMany']);
    for (const dir of ['overlays/pkcs11', 'overlays/external-redis']) {
      const objects = build(dir);
      const pod = podSpec(one(objects, 'Deployment', 'tessera'));
      const configMapName = pod.volumes.find((volume) => volume.name === 'config')?.configMap
        ?.name as string;
      const config = parseConfig(
        parseYaml(
          (one(objects, 'ConfigMap', configMapName).data as Record<string, string>)[
            'config.yaml'
          ] as string,
        ),
      );
      expect(config.keys.provider).toBe('pkcs11');
      const broker = pod.containers.find(
        (container) => container.name === 'tessera',
      ) as Container & { volumeMounts: Array<{ name: string; mountPath: string }> };
      const moduleMount = broker.volumeMounts.find((mount) =>
        (config.keys.module as string).startsWith(`${mount.mountPath}/`),
      );
      expect(moduleMount, 'keys.module lies on a mounted volume').toBeDefined();
      expect(
        broker.env?.find((variable) => variable.name === config.keys.pinEnv)?.valueFrom
          ?.secretKeyRef?.name,
      ).toBe('tessera-hsm');
    }
    expect(find(build('overlays/external-redis'), 'Deployment', 'tessera-redis')).toEqual([]);
    expect(existsSync(join(DEPLOY, 'tessera.yaml'))).toBe(false);
  });
});
