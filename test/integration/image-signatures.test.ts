import { createServer, type Server } from 'node:http';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSignatureChecker } from '../../src/attestation/signatures.js';
import { parseSigningKey } from '../../src/attestation/cosign.js';
import {
  createRegistryClient,
  MAX_MANIFEST_BYTES,
  type RegistryClient,
} from '../../src/attestation/registry.js';
import { createMemoryCache } from '../../src/cache/index.js';
import { silentLogger } from '../../src/observability/index.js';
import {
  exchangeForm,
  JWT_TYPE,
  postToken,
  startTestApp,
  type TestApp,
  TOKEN_EXCHANGE,
} from '../support/app.js';
import { startKubeApiServer, type KubeApiServer } from '../support/kube-apiserver.js';
import { freePort } from '../support/net.js';
import { pod } from '../support/pods.js';
import { writePolicies } from '../support/policies.js';
import {
  cosignKeyPair,
  requireBinary,
  startRegistry,
  type TestRegistry,
} from '../support/registry.js';

/**
 * cosign signature checks against a real registry (docker-registry over TLS), with images and
 * signatures pushed in cosign's layout; registry faults a real registry cannot produce (huge,
 * endless, malformed answers) come from a small fault server.
 */

const hasRegistry = requireBinary('docker-registry');

describe.skipIf(!hasRegistry)('image signatures', () => {
  let registry: TestRegistry;
  const release = cosignKeyPair();
  const qa = cosignKeyPair();
  const other = cosignKeyPair();
  const images: Record<string, string> = {};
  let client: RegistryClient;
  let fetches = 0;

  const ref = (repository: string, digest: string) => `${registry.host}/${repository}@${digest}`;

  beforeAll(async () => {
    registry = await startRegistry({ tokenAuth: true });
    const real = createRegistryClient(() => ({ ca: registry.caPem }));
    // Counts reads, to show the verdict cache; every read still goes to the real registry.
    client = {
      manifest: (...args) => ((fetches += 1), real.manifest(...args)),
      blob: (...args) => real.blob(...args),
    };
    const push = async (name: string, repository: string) =>
      (images[name] = ref(repository, await registry.pushImage(repository, name)));
    await push('signed', 'shop/orders');
    await push('both', 'shop/orders');
    await push('unsigned', 'shop/orders');
    await push('other-key', 'shop/orders');
    await push('wrong-digest', 'shop/orders');
    await push('wrong-repo', 'shop/orders');
    await push('bad-signature', 'shop/orders');
    await push('wrong-type', 'shop/orders');
    await push('sidecar', 'shop/envoy');
    await push('via-token', 'shop/orders');
    const digest = (name: string) => (images[name] as string).split('@')[1] as string;
    await registry.pushSignature('shop/orders', digest('signed'), release.privateKey);
    await registry.pushSignature('shop/orders', digest('both'), qa.privateKey);
    await registry.pushSignature('shop/orders', digest('both'), release.privateKey);
    await registry.pushSignature('shop/orders', digest('other-key'), other.privateKey);
    await registry.pushSignature('shop/orders', digest('wrong-digest'), release.privateKey, {
      payloadDigest: digest('signed'),
    });
    await registry.pushSignature('shop/orders', digest('wrong-repo'), release.privateKey, {
      payloadReference: `${registry.host}/shop/evil`,
    });
    await registry.pushSignature('shop/orders', digest('bad-signature'), release.privateKey, {
      signBytes: Buffer.from('something else'),
    });
    await registry.pushSignature('shop/orders', digest('wrong-type'), release.privateKey, {
      type: 'atomic container signature',
    });
    await registry.pushSignature('shop/envoy', digest('sidecar'), release.privateKey);
    await registry.pushSignature('shop/orders', digest('via-token'), release.privateKey, {
      payloadReference: `${registry.tokenHost}/shop/orders`,
    });
  }, 60_000);
  afterAll(async () => {
    await registry?.stop();
  });

  const checker = (registryClient: RegistryClient = client, onCheck?: (result: string) => void) =>
    createSignatureChecker({
      registry: registryClient,
      keys: [parseSigningKey('release', release.publicPem), parseSigningKey('qa', qa.publicPem)],
      logger: silentLogger(),
      now: Date.now,
      ...(onCheck ? { onCheck } : {}),
    });

  const table: Array<[string, string[], string[]]> = [
    ['ok/signed-by-release', ['signed'], ['release']],
    ['ok/signed-by-two-keys', ['both'], ['release', 'qa']],
    ['ok/every-image-signed', ['signed', 'sidecar'], ['release']],
    ['ok/only-keys-common-to-every-image', ['both', 'sidecar'], ['release']],
    ['fail/unsigned', ['unsigned'], []],
    ['fail/another-keys-signature', ['other-key'], []],
    ['fail/payload-names-another-digest', ['wrong-digest'], []],
    ['fail/payload-names-another-repository', ['wrong-repo'], []],
    ['fail/signature-over-other-bytes', ['bad-signature'], []],
    ['fail/not-a-cosign-payload-type', ['wrong-type'], []],
    ['fail/one-unsigned-image-spoils-the-pod', ['signed', 'unsigned'], []],
  ];
  for (const [name, pick, expected] of table) {
    it(name, async () => {
      const results: string[] = [];
      expect(
        await checker(client, (result) => results.push(result)).signedBy(
          pick.map((image) => images[image] as string),
        ),
      ).toEqual(expected);
      // A verdict from the registry's answer, not from a failure to get one.
      expect(results).not.toContain('error');
      expect(results).toHaveLength(pick.length);
    });
  }

  it('fail/image-without-digest-is-never-signed', async () => {
    expect(
      await checker().signedBy([images.signed as string, `${registry.host}/shop/orders:1.4`]),
    ).toEqual([]);
  });

  it('ok/registry-with-docker-token-auth', async () => {
    const before = registry.tokensIssued();
    const results: string[] = [];
    const image = `${registry.tokenHost}/shop/orders@${(images['via-token'] as string).split('@')[1]}`;
    const viaToken = createRegistryClient(() => ({ ca: registry.caPem }));
    expect(await checker(viaToken, (result) => results.push(result)).signedBy([image])).toEqual([
      'release',
    ]);
    expect(results).toEqual(['signed']);
    // One token for the repository, reused for the payload blob.
    expect(registry.tokensIssued() - before).toBe(1);
  });

  it('ok/verdicts-cached-by-digest', async () => {
    const cached = checker();
    await cached.signedBy([images.signed as string]);
    const before = fetches;
    for (let i = 0; i < 5; i++)
      expect(await cached.signedBy([images.signed as string])).toEqual(['release']);
    expect(fetches).toBe(before);
  });

  it('fail/registry-down-counts-as-unsigned-and-is-counted', async () => {
    const port = await freePort();
    const results: string[] = [];
    const down = createRegistryClient(() => ({ insecure: true }), 1000);
    const image = `127.0.0.1:${port}/shop/orders@${(images.signed as string).split('@')[1]}`;
    expect(await checker(down, (result) => results.push(result)).signedBy([image])).toEqual([]);
    expect(results).toEqual(['error']);
  });

  it('fail/registry-tls-with-unknown-ca-counts-as-unsigned', async () => {
    const results: string[] = [];
    const untrusted = createRegistryClient(() => ({}), 2000);
    expect(
      await checker(untrusted, (result) => results.push(result)).signedBy([
        images.signed as string,
      ]),
    ).toEqual([]);
    expect(results).toEqual(['error']);
  });

  describe('registry faults', () => {
    let faults: Server;
    let host: string;
    let mode = 'huge';
    let bytesSent = 0;
    beforeAll(async () => {
      faults = createServer((req, res) => {
        if (mode === 'huge-declared') {
          res.writeHead(200, {
            'content-type': 'application/vnd.oci.image.manifest.v1+json',
            'content-length': String(50 * 1024 * 1024),
          });
          res.write('{"schemaVersion":2,');
          return;
        }
        if (mode === 'endless') {
          res.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json' });
          const chunk = Buffer.alloc(64 * 1024, 0x20);
          const pump = () => {
            while (!res.destroyed && res.write(chunk)) bytesSent += chunk.length;
            if (!res.destroyed) res.once('drain', pump);
          };
          pump();
          return;
        }
        if (mode === 'slow') {
          res.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json' });
          const timer = setInterval(() => res.write(' '), 50);
          res.on('close', () => clearInterval(timer));
          return;
        }
        if (mode === 'malformed') {
          res.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json' });
          res.end('{"schemaVersion":2,"layers":');
          return;
        }
        void req;
        res.writeHead(500).end();
      });
      await new Promise<void>((resolve) => faults.listen(0, '127.0.0.1', resolve));
      host = `127.0.0.1:${(faults.address() as { port: number }).port}`;
    });
    afterAll(async () => {
      faults.closeAllConnections();
      await new Promise((resolve) => faults.close(resolve));
    });

    for (const fault of ['huge-declared', 'endless', 'slow', 'malformed', 'server-error']) {
      it(`fail/${fault}-manifest-cut-off-and-unsigned`, async () => {
        mode = fault;
        bytesSent = 0;
        const results: string[] = [];
        const faulty = createRegistryClient(() => ({ insecure: true }), 500);
        const image = `${host}/shop/orders@${(images.signed as string).split('@')[1]}`;
        expect(await checker(faulty, (result) => results.push(result)).signedBy([image])).toEqual(
          [],
        );
        expect(results).toEqual(['error']);
        // Cut off: never read far past the cap (socket buffers aside).
        expect(bytesSent).toBeLessThan(MAX_MANIFEST_BYTES * 64);
      });
    }
  });

  describe('in the exchange', () => {
    let server: KubeApiServer;
    let broker: TestApp;
    const AUDIENCE = 'sts.example.com';

    beforeAll(async () => {
      server = await startKubeApiServer();
      const dir = registryDir();
      writeFileSync(join(dir, 'release.pub'), release.publicPem);
      broker = await startTestApp(
        {
          clusters: [
            {
              name: 'prod',
              issuer: server.issuer,
              caFile: server.caFile,
              kubeconfig: server.kubeconfig(),
              audiences: [AUDIENCE],
              podAttestation: true,
            },
          ],
          imageSignatures: {
            keys: { release: join(dir, 'release.pub') },
            registries: { [registry.host]: { caFile: registry.caFile } },
          },
          policies: writePolicies({
            'signed.yaml': `apiVersion: tessera.dev/v1
kind: Role
metadata: { name: release-only }
trustPolicy:
  Version: "2012-10-17"
  Statement:
    - Effect: Allow
      Principal: { Federated: prod }
      Action: sts:TokenExchange
      Condition:
        ForAnyValue:StringEquals: { "kubernetes.io/pod/image/signed-by": release }
issue: { audiences: [payments], algorithm: ES256, maxLifetime: 1h, defaultLifetime: 15m, claims: { app: "{{pod.label.app}}" } }
`,
          }),
        },
        { cache: createMemoryCache() },
      );
    });
    afterAll(async () => {
      await broker?.close();
      await server?.stop();
    });

    async function exchangeFor(
      name: string,
      image: string,
    ): Promise<{ status: number; json: Record<string, unknown> }> {
      const object = server.put(
        pod({
          namespace: 'payments',
          name,
          serviceAccount: 'payments',
          labels: { app: name },
          containers: [{ name: 'app', image: image.split('@')[0] as string, imageID: image }],
        }),
      );
      const token = await server.issueToken({
        namespace: 'payments',
        serviceAccount: 'payments',
        pod: name,
        podUid: object.metadata.uid,
        audiences: [AUDIENCE],
      });
      return postToken(
        broker.url,
        exchangeForm({
          grant_type: TOKEN_EXCHANGE,
          subject_token: token,
          subject_token_type: JWT_TYPE,
          resource: 'release-only',
        }),
      );
    }

    it('ok/release-signed-image-gets-credentials', async () => {
      const answer = await exchangeFor('signed-app', images.signed as string);
      expect(answer.status).toBe(200);
      expect(decodeJwt(answer.json.access_token as string)).toMatchObject({ app: 'signed-app' });
    });

    it('fail/unsigned-image-denied', async () => {
      expect(await exchangeFor('unsigned-app', images.unsigned as string)).toMatchObject({
        status: 403,
        json: { error: 'access_denied' },
      });
    });

    it('fail/other-key-denied', async () => {
      expect(await exchangeFor('other-app', images['other-key'] as string)).toMatchObject({
        status: 403,
        json: { error: 'access_denied' },
      });
    });
  });
});

function registryDir(): string {
  return mkdtempSync(join(tmpdir(), 'tessera-cosign-keys-'));
}
