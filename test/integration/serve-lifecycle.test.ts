import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { join, resolve } from 'node:path';
import { createLocalJWKSet, jwtVerify, type JSONWebKeySet } from 'jose';
import { afterEach, describe, expect, it } from 'vitest';
import { JWT_TYPE, TOKEN_EXCHANGE } from '../support/app.js';
import { startBrokerProcess, type BrokerProcess } from '../support/broker-process.js';

/** `tessera serve` as a real process: SIGTERM under load, a second SIGTERM, two workers. */
let broker: BrokerProcess | undefined;
afterEach(async () => {
  await broker?.stop();
  broker = undefined;
});

interface Answer {
  status: number;
  body: string;
}

/** One request; `agent: false` opens a fresh connection, so node:cluster may hand it to any worker. */
function send(
  url: string,
  options: { method?: string; body?: string; agent?: Agent | false } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: options.method ?? 'GET',
        agent: options.agent ?? false,
        headers: options.body ? { 'content-type': 'application/x-www-form-urlencoded' } : {},
      },
      (res) => {
        let body = '';
        res.on('data', (chunk: Buffer) => (body += chunk.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

const exchangeBody = async (b: BrokerProcess) =>
  new URLSearchParams({
    grant_type: TOKEN_EXCHANGE,
    subject_token: await b.dev.signToken({
      namespace: 'default',
      serviceAccount: 'demo',
      audience: 'tessera',
    }),
    subject_token_type: JWT_TYPE,
    resource: 'demo',
  }).toString();

/** The requestIds of the audit events in `file`, one JSON event a line. */
const auditedRequests = (file: string): string[] =>
  readFileSync(file, 'utf8')
    .split('\n')
    .filter((line) => line.length > 0)
    .map((line) => JSON.parse(line) as { event: string; requestId: string })
    .map((event) => `${event.event} ${event.requestId}`);

/** One exchange with a request id of its own, so its audit event can be found by it. */
async function exchangeAs(b: BrokerProcess, requestId: string, body: string): Promise<number> {
  const response = await fetch(`${b.url}/v1/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-request-id': requestId },
    body,
  });
  await response.arrayBuffer();
  return response.status;
}

describe('tessera serve life cycle', () => {
  it(
    'ok/sigterm-under-load: readiness 503 at once, exchanges served through the drain, exit 0',
    { timeout: 120_000 },
    async () => {
      const drainSeconds = 2;
      broker = await startBrokerProcess({ config: { lifecycle: { drainSeconds } } });
      const b = broker;
      await b.waitForLog('listening');
      const body = await exchangeBody(b);
      const results: Array<{ startedAt: number; status?: number; error?: string }> = [];
      let stop = false;
      const loops = Array.from({ length: 6 }, async () => {
        const agent = new Agent({ keepAlive: true });
        while (!stop) {
          const startedAt = Date.now();
          try {
            const answer = await send(`${b.url}/v1/token`, { method: 'POST', body, agent });
            results.push({ startedAt, status: answer.status });
          } catch (error) {
            results.push({
              startedAt,
              error: (error as NodeJS.ErrnoException).code ?? String(error),
            });
            await new Promise((resolve) => setTimeout(resolve, 20));
          }
        }
        agent.destroy();
      });
      await expect
        .poll(() => results.filter((result) => result.status === 200).length, { timeout: 20_000 })
        .toBeGreaterThan(20);

      const signalledAt = Date.now();
      b.child.kill('SIGTERM');
      await expect
        .poll(async () => (await send(`${b.url}/readyz`)).status, { timeout: 3_000, interval: 50 })
        .toBe(503);
      const exit = await Promise.race([
        b.exited,
        new Promise<'hung'>((resolve) =>
          setTimeout(() => resolve('hung'), (drainSeconds + 10) * 1000),
        ),
      ]);
      stop = true;
      await Promise.all(loops);

      expect(exit).toEqual({ code: 0, signal: null });
      // Every answer was a success: no request was cut or failed with a 5xx during the drain.
      expect(
        results.filter((result) => result.status !== undefined && result.status !== 200),
      ).toEqual([]);
      // Requests that started well inside the drain window all got their answer.
      const duringDrain = results.filter(
        (result) =>
          result.startedAt > signalledAt &&
          result.startedAt < signalledAt + (drainSeconds - 0.5) * 1000,
      );
      expect(duringDrain.length).toBeGreaterThan(0);
      expect(duringDrain.filter((result) => result.status !== 200)).toEqual([]);
      const phases = b.logs
        .map((entry) => String(entry.msg))
        .filter((msg) => msg.startsWith('shutdown:'));
      expect(phases).toEqual([
        'shutdown: draining; readiness reports 503, requests are still served',
        'shutdown: listeners closed; finishing in-flight requests',
        'shutdown: connections closed; closing cache, keys and watchers',
        'shutdown: stopped',
      ]);
    },
  );

  it('ok/a-second-sigterm-during-the-drain-exits-at-once', { timeout: 90_000 }, async () => {
    broker = await startBrokerProcess({ config: { lifecycle: { drainSeconds: 60 } } });
    await broker.waitForLog('listening');
    broker.child.kill('SIGTERM');
    await broker.waitForLog(/^shutdown: draining/);
    broker.child.kill('SIGTERM');
    // Bounded far below the 60 s drain the first signal started.
    const exit = await Promise.race([
      broker.exited,
      new Promise<'hung'>((resolve) => setTimeout(() => resolve('hung'), 15_000)),
    ]);
    expect(exit).toEqual({ code: 1, signal: null });
    expect(broker.logs.map((entry) => entry.msg)).toContain('shutdown: second signal, exiting now');
  });

  it(
    'ok/two-workers-share-the-listener-and-keys, a dead worker is replaced, all stop together',
    { timeout: 180_000 },
    async () => {
      broker = await startBrokerProcess({
        args: ['--workers', '2'],
        config: { lifecycle: { drainSeconds: 1 } },
      });
      const b = broker;
      await b.waitForLog('listening', { count: 2, timeoutMs: 120_000 });
      const workers = b.logs
        .filter((entry) => entry.msg === 'worker started')
        .map((entry) => entry.pid as number);
      expect(new Set(workers).size).toBe(2);

      // Fresh connections are handed out round-robin: both workers answer, with one JWKS.
      const jwksBodies = new Set<string>();
      for (let index = 0; index < 8; index += 1)
        jwksBodies.add((await send(`${b.url}/.well-known/jwks.json`)).body);
      expect(jwksBodies.size).toBe(1);
      const jwks = createLocalJWKSet(JSON.parse([...jwksBodies][0] as string) as JSONWebKeySet);
      const body = await exchangeBody(b);
      for (let index = 0; index < 8; index += 1) {
        const answer = await send(`${b.url}/v1/token`, { method: 'POST', body });
        expect(answer.status).toBe(200);
        const token = (JSON.parse(answer.body) as { access_token: string }).access_token;
        await jwtVerify(token, jwks, { issuer: b.url });
      }

      process.kill(workers[0] as number, 'SIGKILL');
      await b.waitForLog('worker died; starting a replacement');
      for (let index = 0; index < 6; index += 1)
        expect((await send(`${b.url}/v1/token`, { method: 'POST', body })).status).toBe(200);
      await b.waitForLog('worker started', { count: 3 });
      await b.waitForLog('listening', { count: 3, timeoutMs: 120_000 });
      for (let index = 0; index < 6; index += 1)
        expect((await send(`${b.url}/v1/token`, { method: 'POST', body })).status).toBe(200);

      b.child.kill('SIGTERM');
      const exit = await Promise.race([
        b.exited,
        new Promise<'hung'>((resolve) => setTimeout(() => resolve('hung'), 15_000)),
      ]);
      expect(exit).toEqual({ code: 0, signal: null });
      expect(b.logs.filter((entry) => entry.msg === 'worker stopped')).toHaveLength(2);
      expect(b.logs.map((entry) => entry.msg)).toContain('shutdown: every worker stopped');
    },
  );

  it(
    'ok/two-workers-signalled-as-a-process-group: each drains once, none cut short, exit 0',
    { timeout: 180_000 },
    async () => {
      broker = await startBrokerProcess({
        args: ['--workers', '2'],
        processGroup: true,
        config: { lifecycle: { drainSeconds: 2 } },
      });
      const b = broker;
      await b.waitForLog('listening', { count: 2, timeoutMs: 120_000 });
      // What `kill -TERM -PGID` (or Ctrl-C, with SIGINT) does: every process of the group gets it,
      // the workers directly and again through the primary.
      process.kill(-(b.child.pid as number), 'SIGTERM');
      const exit = await Promise.race([
        b.exited,
        new Promise<'hung'>((resolve) => setTimeout(() => resolve('hung'), 30_000)),
      ]);
      expect(exit).toEqual({ code: 0, signal: null });
      const messages = b.logs.map((entry) => entry.msg);
      expect(messages).not.toContain('shutdown: second signal, exiting now');
      expect(messages.filter((msg) => String(msg).startsWith('shutdown: draining'))).toHaveLength(
        2,
      );
      expect(messages.filter((msg) => msg === 'shutdown: stopped')).toHaveLength(2);
      const stopped = b.logs.filter((entry) => entry.msg === 'worker stopped');
      expect(stopped.map((entry) => entry.code)).toEqual([0, 0]);
      expect(messages).toContain('shutdown: every worker stopped');
    },
  );

  it(
    'ok/sighup-reopens-the-audit-file-moved-away-by-log-rotation, and the broker keeps serving',
    { timeout: 90_000 },
    async () => {
      broker = await startBrokerProcess({ config: { audit: { file: 'audit/events.log' } } });
      const b = broker;
      await b.waitForLog('listening');
      const file = join(b.dir, 'audit', 'events.log');
      const body = await exchangeBody(b);
      expect(await exchangeAs(b, 'before-rotation', body)).toBe(200);
      // What logrotate does without copytruncate: move the file away, then signal the process.
      renameSync(file, `${file}.1`);
      b.child.kill('SIGHUP');
      await b.waitForLog('audit file reopened');
      expect(await exchangeAs(b, 'after-rotation', body)).toBe(200);
      expect(auditedRequests(`${file}.1`)).toEqual(['token_exchange before-rotation']);
      expect(auditedRequests(file)).toEqual(['token_exchange after-rotation']);
      b.child.kill('SIGTERM');
      expect(await b.exited).toEqual({ code: 0, signal: null });
    },
  );

  it(
    'fail/sighup-when-the-audit-path-cannot-be-opened-keeps-writing-to-the-open-file',
    { timeout: 90_000 },
    async () => {
      broker = await startBrokerProcess({ config: { audit: { file: 'audit/events.log' } } });
      const b = broker;
      await b.waitForLog('listening');
      const body = await exchangeBody(b);
      expect(await exchangeAs(b, 'before', body)).toBe(200);
      // The directory moved away and a file in its place: the path cannot be opened again.
      renameSync(join(b.dir, 'audit'), join(b.dir, 'audit.old'));
      writeFileSync(join(b.dir, 'audit'), '');
      b.child.kill('SIGHUP');
      const logged = await b.waitForLog(/audit file could not be reopened/);
      expect(logged.level).toBe(50);
      expect(await exchangeAs(b, 'after', body)).toBe(200);
      expect(auditedRequests(join(b.dir, 'audit.old', 'events.log'))).toEqual([
        'token_exchange before',
        'token_exchange after',
      ]);
      // Once the path can be opened again, the next SIGHUP moves the events there, and the file
      // held until then is closed once.
      rmSync(join(b.dir, 'audit'));
      mkdirSync(join(b.dir, 'audit'));
      b.child.kill('SIGHUP');
      await b.waitForLog('audit file reopened');
      expect(await exchangeAs(b, 'restored', body)).toBe(200);
      expect(auditedRequests(join(b.dir, 'audit', 'events.log'))).toEqual([
        'token_exchange restored',
      ]);
      // No error from the stream itself: the failed open was told once, above, and nothing was
      // closed twice (EBADF).
      const streamErrors = b.logs
        .filter((entry) => entry.msg === 'audit stream error')
        .map((entry) => String((entry.err as { message?: unknown } | undefined)?.message));
      expect(streamErrors).toEqual([]);
      b.child.kill('SIGTERM');
      expect(await b.exited).toEqual({ code: 0, signal: null });
    },
  );

  it(
    'ok/two-workers-reopen-their-audit-file-on-the-primary-s-sighup',
    { timeout: 180_000 },
    async () => {
      broker = await startBrokerProcess({
        args: ['--workers', '2'],
        config: { audit: { file: 'events.log' }, lifecycle: { drainSeconds: 1 } },
      });
      const b = broker;
      await b.waitForLog('listening', { count: 2, timeoutMs: 120_000 });
      const file = join(b.dir, 'events.log');
      renameSync(file, `${file}.1`);
      b.child.kill('SIGHUP');
      await b.waitForLog('audit file reopened', { count: 2 });
      const reopenedBy = b.logs
        .filter((entry) => entry.msg === 'audit file reopened')
        .map((entry) => entry.pid);
      expect(new Set(reopenedBy).size).toBe(2);
      // Fresh connections go to both workers: every event after the signal is in the new file.
      const body = await exchangeBody(b);
      const sent = Array.from({ length: 8 }, (_, index) => `after-rotation-${index}`);
      for (const requestId of sent) {
        const answer = await send(`${b.url}/v1/token`, { method: 'POST', body });
        expect(answer.status).toBe(200);
        expect(await exchangeAs(b, requestId, body)).toBe(200);
      }
      const audited = auditedRequests(file);
      expect(audited.filter((line) => line.includes(' after-rotation-'))).toEqual(
        sent.map((requestId) => `token_exchange ${requestId}`),
      );
      expect(audited).toHaveLength(16);
      expect(auditedRequests(`${file}.1`)).toEqual([]);
      b.child.kill('SIGTERM');
      expect(await b.exited).toEqual({ code: 0, signal: null });
    },
  );

  it(
    'error/standard-output-closed: exchanges go on and every lost audit event is counted',
    { timeout: 90_000 },
    async () => {
      broker = await startBrokerProcess();
      const b = broker;
      await b.waitForLog('listening');
      // The log reader is gone (a crashed log shipper): every write to standard output fails.
      b.child.stdout?.destroy();
      const body = await exchangeBody(b);
      for (const requestId of ['lost-1', 'lost-2', 'lost-3'])
        expect(await exchangeAs(b, requestId, body)).toBe(200);
      const metrics = await (await fetch(`${b.url}/metrics`)).text();
      expect(metrics).toMatch(/^tessera_audit_write_failures_total 3$/m);
      b.child.kill('SIGTERM');
      expect(await b.exited).toEqual({ code: 0, signal: null });
    },
  );

  it(
    'error/standard-output-refusing-writes (a full disk behind a redirect): the broker starts and serves',
    { timeout: 90_000 },
    async () => {
      const bin = resolve(import.meta.dirname, '../../bin/tessera.js');
      broker = await startBrokerProcess({
        command: ['sh', '-c', 'exec "$0" "$@" > /dev/full', process.execPath, bin],
      });
      const b = broker;
      const deadline = Date.now() + 60_000;
      let ready = 0;
      while (ready !== 200 && Date.now() < deadline) {
        ready = await fetch(`${b.url}/readyz`).then(
          (response) => response.status,
          () => 0,
        );
        if (ready !== 200) await new Promise((done) => setTimeout(done, 200));
      }
      expect(ready).toBe(200);
      const body = await exchangeBody(b);
      expect(await exchangeAs(b, 'to-a-full-disk', body)).toBe(200);
      const metrics = await (await fetch(`${b.url}/metrics`)).text();
      expect(metrics).toMatch(/^tessera_audit_write_failures_total 1$/m);
    },
  );
});
