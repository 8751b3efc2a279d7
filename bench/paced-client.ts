import { readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';

/**
 * The open-loop generator of the load curve, in a process of its own: one request falls due
 * every 1/rate s whatever happened to the earlier ones, is sent on the first idle keep-alive
 * connection (or waits for one), and its latency counts from when it fell due.
 *
 * Written on node:net with every request encoded once, because the figure it measures is a tail
 * latency: node:http's client spent about as much CPU per request as the server under test and
 * its garbage collections, in the bench process beside everything else, showed up as the
 * server's p99 (12 ms at 1,300 req/s against a trivial node:http server).
 *
 * argv: JSON { host, port, path, rate, seconds, warmupSeconds, connections, bodiesFile };
 * prints JSON { latencies (ms, sorted, counted requests only), non2xx, elapsed (s), issued }.
 */
interface Settings {
  host: string;
  port: number;
  path: string;
  rate: number;
  seconds: number;
  warmupSeconds: number;
  connections: number;
  bodiesFile: string;
}

interface Connection {
  socket: Socket;
  /** The request in flight on it: when it fell due and whether it is counted. */
  due?: number;
  counted: boolean;
  buffered: Buffer;
}

const HEADER_END = Buffer.from('\r\n\r\n');

const settings = JSON.parse(process.argv[2] ?? '{}') as Settings;
const requests = readFileSync(settings.bodiesFile, 'utf8')
  .split('\n')
  .filter((body) => body.length > 0)
  .map((body) =>
    Buffer.from(
      `POST ${settings.path} HTTP/1.1\r\nHost: ${settings.host}:${settings.port}\r\n` +
        `Content-Type: application/x-www-form-urlencoded\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    ),
  );

const latencies: number[] = [];
const idle: Connection[] = [];
const waiting: { due: number; counted: boolean }[] = [];
let non2xx = 0;
let next = 0;
let settled = 0;

/** Where the response at the start of `data` ends, or -1 while it is incomplete. */
function responseEnd(data: Buffer): number {
  const headerEnd = data.indexOf(HEADER_END);
  if (headerEnd < 0) return -1;
  const head = data.subarray(0, headerEnd).toString('latin1').toLowerCase();
  const length = /\r\ncontent-length: *(\d+)/.exec(head);
  if (length) {
    const end = headerEnd + 4 + Number(length[1]);
    return data.length >= end ? end : -1;
  }
  if (head.includes('\r\ntransfer-encoding: chunked')) {
    const last = data.indexOf('\r\n0\r\n\r\n', headerEnd);
    return last < 0 ? -1 : last + 7;
  }
  return headerEnd + 4;
}

function send(connection: Connection, due: number, counted: boolean): void {
  connection.due = due;
  connection.counted = counted;
  connection.socket.write(requests[next++ % requests.length] as Buffer);
}

function onData(connection: Connection, chunk: Buffer): void {
  connection.buffered =
    connection.buffered.length === 0 ? chunk : Buffer.concat([connection.buffered, chunk]);
  const end = responseEnd(connection.buffered);
  if (end < 0 || connection.due === undefined) return;
  const status = connection.buffered.subarray(9, 12).toString('latin1');
  connection.buffered = connection.buffered.subarray(end);
  if (connection.counted) {
    latencies.push(performance.now() - connection.due);
    if (status !== '200') non2xx += 1;
  }
  connection.due = undefined;
  settled += 1;
  const queued = waiting.shift();
  if (queued) send(connection, queued.due, queued.counted);
  else idle.push(connection);
}

async function open(): Promise<Connection> {
  const socket = connect({ host: settings.host, port: settings.port, noDelay: true });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  const connection: Connection = { socket, counted: false, buffered: Buffer.alloc(0) };
  socket.on('data', (chunk: Buffer) => onData(connection, chunk));
  socket.on('error', () => undefined);
  return connection;
}

const connections = await Promise.all(Array.from({ length: settings.connections }, open));
idle.push(...connections);
const warmup = Math.round(settings.rate * settings.warmupSeconds);
const total = warmup + Math.max(1, Math.round(settings.rate * settings.seconds));
const started = performance.now();
let measuredFrom = started;
let issued = 0;
await new Promise<void>((resolve) => {
  const tick = (): void => {
    const dueCount = Math.min(
      total,
      Math.floor(((performance.now() - started) / 1000) * settings.rate) + 1,
    );
    while (issued < dueCount) {
      const due = started + (issued * 1000) / settings.rate;
      if (issued === warmup) measuredFrom = due;
      const counted = issued++ >= warmup;
      const connection = idle.pop();
      if (connection) send(connection, due, counted);
      else waiting.push({ due, counted });
    }
    if (issued < total) setTimeout(tick, 1);
    else resolve();
  };
  tick();
});
const deadline = performance.now() + 30_000;
while (settled < issued && performance.now() < deadline)
  await new Promise((resolve) => setTimeout(resolve, 5));
const elapsed = (performance.now() - measuredFrom) / 1000;
for (const connection of connections) connection.socket.destroy();
// Requests never answered count as refused.
non2xx += issued - settled;
latencies.sort((a, b) => a - b);
process.stdout.write(JSON.stringify({ latencies, non2xx, elapsed, issued }));
