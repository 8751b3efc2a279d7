import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../support/app.js';
import { waitFor } from '../support/wait.js';

/**
 * A client that gives up mid-body, or sends a body that cannot be read, made the failure: it is
 * answered 400 (when the socket is still there), logged at debug without a stack, and counted
 * under its own result, so nobody can inflate error logs or server_error alerts at will.
 */
let t: TestApp;
let port: number;
beforeAll(async () => {
  t = await startTestApp();
  port = Number(new URL(t.url).port);
});
afterAll(async () => {
  await t?.close();
});

const exchanges = async (result: string): Promise<number> => {
  const text = await (await fetch(`${t.url}/metrics`)).text();
  return text
    .split('\n')
    .filter(
      (line) =>
        line.startsWith('tessera_token_exchanges_total{') && line.includes(`result="${result}"`),
    )
    .reduce((sum, line) => sum + Number(line.split(' ').at(-1)), 0);
};
const logged = () =>
  t.logs.lines.map(
    (line) => JSON.parse(line) as { level: number; msg: string; err?: unknown; stack?: unknown },
  );

/** Sends `head` and `body` raw; resolves with whatever the server answered before closing. */
const raw = (text: string, options: { destroyAfterWrite?: boolean } = {}): Promise<string> =>
  new Promise((resolve, reject) => {
    const socket: Socket = connect({ host: '127.0.0.1', port }, () => {
      socket.write(text, () => {
        if (options.destroyAfterWrite) {
          socket.destroy();
          resolve('');
        }
      });
    });
    let answer = '';
    socket.on('data', (chunk: Buffer) => (answer += chunk.toString('latin1')));
    socket.on('end', () => resolve(answer));
    socket.on('close', () => resolve(answer));
    socket.on('error', reject);
  });

const HEAD =
  'POST /v1/token HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\n';

describe('a client that fails its own request body', () => {
  it('fail/aborted-mid-body-is-the-clients-failure', async () => {
    const before = logged().length;
    await raw(`${HEAD}Content-Length: 4000\r\n\r\ngrant_type=urn%3Aietf%3Aparams`, {
      destroyAfterWrite: true,
    });
    await waitFor(
      async () => (await exchanges('unreadable_body')) === 1,
      'the aborted exchange to be counted',
    );
    expect(await exchanges('server_error')).toBe(0);
    const lines = logged().slice(before);
    expect(lines.filter((line) => line.level >= 40)).toEqual([]);
    expect(lines.find((line) => line.msg === 'request refused')).toMatchObject({ level: 20 });
    expect(JSON.stringify(lines)).not.toMatch(/\\n\s+at |"stack":"[^"]/);
  });

  it('fail/malformed-chunked-body-answers-400', async () => {
    const before = logged().length;
    const answer = await raw(
      `${HEAD}Transfer-Encoding: chunked\r\n\r\n5\r\ngrant\r\nzz-not-a-chunk-size\r\n\r\n`,
    );
    expect(answer).toMatch(/^HTTP\/1\.1 400 /);
    await waitFor(
      async () => (await exchanges('unreadable_body')) === 2,
      'the unreadable exchange to be counted',
    );
    expect(await exchanges('server_error')).toBe(0);
    expect(
      logged()
        .slice(before)
        .filter((line) => line.level >= 40),
    ).toEqual([]);
  });

  it('ok/a-whole-body-is-still-an-ordinary-request', async () => {
    const body = 'grant_type=password';
    const answer = await raw(
      `${HEAD}Content-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`,
    );
    expect(answer).toMatch(/^HTTP\/1\.1 400 /);
    expect(answer).toContain('"error":"unsupported_grant_type"');
  });
});
