import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { configProblems } from '../../support/config-problems.js';
import { loadConfig } from '../../../src/config/index.js';

const minimal = { issuer: 'https://sts.example.com', audience: 'sts.example.com' };
const cluster = { name: 'prod', issuer: 'https://oidc.prod.example.com' };

describe('pod attestation config', () => {
  it('fail/pod-attestation-needs-a-kubeconfig', () => {
    expect(
      configProblems({ ...minimal, clusters: [{ ...cluster, podAttestation: true }] }),
    ).toEqual(['clusters[0].kubeconfig: is required when podAttestation is true']);
  });

  it('fail/image-signatures-fields-checked', () => {
    expect(
      configProblems({
        ...minimal,
        imageSignatures: {
          keys: { 'bad name': './k.pub' },
          registries: {
            'Registry.Example.com': {},
            'r.example.com': { caFile: 'ca.pem', insecure: true },
            'u.example.com': { username: 'bot' },
          },
          extra: 1,
        },
      }),
    ).toEqual([
      'imageSignatures.keys.bad name: key names use letters, digits, . _ -',
      'imageSignatures.registries.r.example.com: caFile and insecure exclude each other',
      'imageSignatures.registries.u.example.com: username and passwordEnv go together',
      'imageSignatures.registries.Registry.Example.com: must be a registry host[:port] in lowercase',
      'imageSignatures.extra: unknown field',
    ]);
  });

  it('ok/relative-paths-resolve-against-the-config-file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tessera-config-'));
    const file = join(dir, 'tessera.yaml');
    writeFileSync(
      file,
      `issuer: https://sts.example.com
audience: sts.example.com
clusters:
  - { name: prod, issuer: "https://oidc.prod.example.com", kubeconfig: ./kube/config, podAttestation: true }
imageSignatures:
  keys: { release: ./keys/cosign-release.pub, ci: /etc/tessera/ci.pub }
  registries:
    "registry.example.com": { caFile: ./registry-ca.pem }
    "127.0.0.1:5000": { insecure: true }
`,
    );
    const config = loadConfig({ file, env: {} });
    expect(config.clusters[0]).toMatchObject({
      kubeconfig: join(dir, 'kube/config'),
      podAttestation: true,
    });
    expect(config.imageSignatures).toEqual({
      keys: { release: join(dir, 'keys/cosign-release.pub'), ci: '/etc/tessera/ci.pub' },
      registries: {
        'registry.example.com': { caFile: join(dir, 'registry-ca.pem'), insecure: false },
        '127.0.0.1:5000': { insecure: true },
      },
    });
  });
});
