import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { parse as parseYaml } from 'yaml';
import {
  exchangeForm,
  JWT_TYPE,
  postToken,
  startTestApp,
  TOKEN_EXCHANGE,
  type TestApp,
} from '../support/app.js';
import { startOidcIssuer, type OidcIssuer } from '../support/oidc-issuer.js';
import { ENDPOINT_ROLES, writePolicies } from '../support/policies.js';
import { createSoftHsmToken, skipSoftHsm, type SoftHsmToken } from '../support/softhsm.js';

const ROOT = join(import.meta.dirname, '../..');
const RULES = join(ROOT, 'deploy/base/prometheusrule.yaml');
const OPERATIONS = join(ROOT, 'docs/operations.md');

let idp: OidcIssuer;
let t: TestApp;
let policies: string;
const keysDir = mkdtempSync(join(tmpdir(), 'tessera-metrics-'));
beforeAll(async () => {
  idp = await startOidcIssuer({ path: '/scraped' });
  policies = writePolicies(ENDPOINT_ROLES);
  t = await startTestApp(
    {
      policies,
      clusters: [{ name: 'scraped', issuer: idp.issuer, caFile: idp.caFile }],
      keys: { provider: 'local', dir: join(keysDir, 'keys'), rotation: { every: '1h' } },
    },
    { processMetrics: true },
  );
});
afterAll(async () => {
  await t?.close();
  await idp?.close();
  rmSync(keysDir, { recursive: true, force: true });
});

/** Sample lines by name and labels, e.g. `tessera_cluster_ready{cluster="scraped"}` → 1. */
async function scrape(): Promise<{
  text: string;
  samples: Map<string, number>;
  families: Map<string, string>;
}> {
  const text = await (await fetch(`${t.url}/metrics`)).text();
  const samples = new Map<string, number>();
  const families = new Map<string, string>();
  for (const line of text.split('\n')) {
    const type = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (type) families.set(type[1] as string, type[2] as string);
    else if (line && !line.startsWith('#')) {
      const at = line.lastIndexOf(' ');
      samples.set(line.slice(0, at), Number(line.slice(at + 1)));
    }
  }
  return { text, samples, families };
}

/** Every series name a family exports: histograms add _bucket, _sum and _count. */
function exportedNames(families: Map<string, string>): Set<string> {
  const names = new Set<string>();
  for (const [name, type] of families) {
    names.add(name);
    if (type === 'histogram' || type === 'summary')
      for (const suffix of ['_bucket', '_sum', '_count']) names.add(`${name}${suffix}`);
  }
  return names;
}

describe('/metrics', () => {
  it('ok/process-metrics-carry-the-prefix-once', async () => {
    const { families } = await scrape();
    expect(families.has('tessera_process_cpu_seconds_total')).toBe(true);
    expect(families.has('tessera_nodejs_eventloop_lag_p99_seconds')).toBe(true);
    expect(
      [...families.keys()].filter(
        (name) => name.includes('process_process') || !name.startsWith('tessera_'),
      ),
    ).toEqual([]);
  });

  it('ok/state-gauges-describe-clusters-cache-keys-ca-and-policies', async () => {
    await vi.waitFor(async () =>
      expect((await scrape()).samples.get('tessera_cluster_ready{cluster="scraped"}')).toBe(1),
    );
    const { samples } = await scrape();
    expect(samples.get('tessera_cluster_ready{cluster="dev"}')).toBe(1);
    expect(samples.get('tessera_jwks_age_seconds{cluster="scraped"}')).toBeGreaterThanOrEqual(0);
    expect(samples.get('tessera_jwks_age_seconds{cluster="scraped"}')).toBeLessThan(600);
    expect(
      samples.get('tessera_jwks_fetch_duration_seconds_count{cluster="scraped",result="ok"}'),
    ).toBeGreaterThanOrEqual(1);
    expect(samples.get('tessera_shared_cache_up{backend="memory"}')).toBe(1);
    // rotation.every 1h: the keys created at start are due in (just under) an hour.
    for (const alg of ['ES256', 'RS256']) {
      const left = samples.get(`tessera_signing_key_expiry_seconds{alg="${alg}"}`);
      expect(left).toBeGreaterThan(3000);
      expect(left).toBeLessThanOrEqual(3600);
    }
    expect(
      samples.get('tessera_ca_certificate_expiry_seconds{trust_domain="example.org"}'),
    ).toBeGreaterThan(300 * 86400);
    expect(samples.get('tessera_policy_files_failing')).toBe(0);
    expect(samples.get('tessera_policy_roles')).toBe(Object.keys(ENDPOINT_ROLES).length);
    expect(samples.get('tessera_policy_loaded_timestamp_seconds')).toBeGreaterThan(0);
    // Software keys: no HSM series at all (a 0 would page someone).
    expect([...samples.keys()].filter((name) => name.startsWith('tessera_hsm_up'))).toEqual([]);
  });

  it('ok/signing-latency-is-observed-per-provider-and-algorithm', async () => {
    const subject = await t.devToken('orders', 'order-service');
    const response = await postToken(
      t.url,
      exchangeForm({
        grant_type: TOKEN_EXCHANGE,
        subject_token: subject,
        subject_token_type: JWT_TYPE,
        resource: 'orders-reader',
      }),
    );
    expect(response.status).toBe(200);
    const { samples } = await scrape();
    expect(
      samples.get('tessera_sign_duration_seconds_count{provider="local",alg="ES256"}'),
    ).toBeGreaterThanOrEqual(1);
  });

  it('fail/a-policy-file-that-stops-loading-is-counted-until-fixed', async () => {
    const store = t.app.policies as typeof t.app.policies & { reload(): boolean };
    const file = join(policies, 'shared.yaml');
    const good = readFileSync(file, 'utf8');
    try {
      writeFileSync(file, 'kind: Role\nmetadata: [not, a, mapping\n');
      store.reload();
      expect((await scrape()).samples.get('tessera_policy_files_failing')).toBe(1);
    } finally {
      writeFileSync(file, good);
      store.reload();
    }
    expect((await scrape()).samples.get('tessera_policy_files_failing')).toBe(0);
  });
});

describe.skipIf(skipSoftHsm())('/metrics with keys in an HSM', () => {
  const PIN_ENV = 'TESSERA_TEST_METRICS_PIN';
  let token: SoftHsmToken;
  let broker: TestApp;
  beforeAll(async () => {
    token = createSoftHsmToken({ label: 'metrics' });
    broker = await startTestApp(
      {
        policies: writePolicies(ENDPOINT_ROLES),
        keys: {
          provider: 'pkcs11',
          module: token.module,
          tokenLabel: 'metrics',
          pinEnv: PIN_ENV,
          algorithms: ['ES256'],
        },
      },
      { env: { ...process.env, [PIN_ENV]: token.pin } },
    );
  });
  afterAll(async () => {
    await broker?.close();
    token?.cleanup();
  });

  it('ok/hsm-up-and-hsm-signing-latency', async () => {
    const subject = await broker.devToken('orders', 'order-service');
    const body = exchangeForm({
      grant_type: TOKEN_EXCHANGE,
      subject_token: subject,
      subject_token_type: JWT_TYPE,
      resource: 'orders-reader',
    });
    expect((await postToken(broker.url, body)).status).toBe(200);
    const text = await (await fetch(`${broker.url}/metrics`)).text();
    expect(text).toContain('tessera_hsm_up{token="metrics"} 1\n');
    expect(text).toMatch(
      /^tessera_sign_duration_seconds_count\{provider="pkcs11",alg="ES256"\} [1-9]/m,
    );
  });
});

interface Rule {
  alert?: string;
  expr?: unknown;
  for?: unknown;
  labels?: Record<string, unknown>;
  annotations?: Record<string, unknown>;
}

describe('deploy/base/prometheusrule.yaml', () => {
  const manifest = parseYaml(readFileSync(RULES, 'utf8')) as {
    apiVersion: string;
    kind: string;
    spec: { groups: Array<{ name: string; rules: Rule[] }> };
  };
  const rules = manifest.spec.groups.flatMap((group) => group.rules);

  it('ok/is-a-prometheus-rule-whose-alerts-are-complete', () => {
    expect([manifest.apiVersion, manifest.kind]).toEqual([
      'monitoring.coreos.com/v1',
      'PrometheusRule',
    ]);
    expect(rules.length).toBeGreaterThan(5);
    const names = rules.map((rule) => rule.alert);
    expect(new Set(names).size).toBe(names.length);
    for (const rule of rules) {
      expect(rule.alert, JSON.stringify(rule)).toMatch(/^Tessera[A-Z][A-Za-z]+$/);
      expect(typeof rule.expr, rule.alert).toBe('string');
      expect(rule.for, rule.alert).toMatch(/^\d+[smh]$/);
      expect(['warning', 'critical'], rule.alert).toContain(rule.labels?.severity);
      expect(typeof rule.annotations?.summary, rule.alert).toBe('string');
      expect(balanced(rule.expr as string), `${rule.alert}: unbalanced brackets or quotes`).toBe(
        true,
      );
    }
  });

  it('ok/references-only-metrics-a-real-broker-exports', async () => {
    const exported = exportedNames((await scrape()).families);
    const referenced = rules.flatMap(
      (rule) => (rule.expr as string).match(/\btessera_[a-z0-9_]+/g) ?? [],
    );
    expect(referenced.length).toBeGreaterThan(rules.length - 1);
    expect(referenced.filter((name) => !exported.has(name))).toEqual([]);
  });

  it('ok/docs-operations-lists-every-metric-and-every-alert', async () => {
    const doc = readFileSync(OPERATIONS, 'utf8');
    const own = [...(await scrape()).families.keys()].filter(
      (name) => !/^tessera_(process|nodejs)_/.test(name),
    );
    expect(own.filter((name) => !doc.includes(`\`${name}\``))).toEqual([]);
    expect(
      rules.map((rule) => rule.alert).filter((alert) => !doc.includes(alert as string)),
    ).toEqual([]);
  });
});

/** Brackets and quotes pair up: what a PromQL typo most often breaks. */
function balanced(expr: string): boolean {
  const stack: string[] = [];
  const pairs: Record<string, string> = { ')': '(', ']': '[', '}': '{' };
  let quote: string | undefined;
  for (const char of expr) {
    if (quote) {
      if (char === quote) quote = undefined;
    } else if (char === '"' || char === "'") quote = char;
    else if ('([{'.includes(char)) stack.push(char);
    else if (char in pairs && stack.pop() !== pairs[char]) return false;
  }
  return stack.length === 0 && quote === undefined;
}
