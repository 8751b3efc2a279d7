import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './net.js';
import { startRedis, type TestRedis } from './redis.js';
import { waitFor } from './wait.js';

const run = promisify(execFile);

/** One `redis-cli` command against 127.0.0.1:`port`; its trimmed output. */
async function redisCli(port: number, ...args: string[]): Promise<string> {
  const { stdout } = await run('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...args], {
    timeout: 5000,
  });
  return stdout.trim();
}

/**
 * A Sentinel set on loopback: a master, one replica and three sentinels (quorum 2) that declare
 * the master down after `downAfterMs` without an answer, so a failover completes in seconds.
 */
export interface TestSentinelSet {
  name: string;
  /** `"127.0.0.1:port"` of each sentinel, as `cache.sentinel.sentinels` takes them. */
  sentinels: string[];
  master: TestRedis;
  replica: TestRedis;
  /** The port the sentinels currently name as master. */
  masterPort(): Promise<number>;
  stop(): Promise<void>;
}

export async function startRedisSentinelSet(
  options: { name?: string; downAfterMs?: number } = {},
): Promise<TestSentinelSet> {
  const name = options.name ?? 'tessera-test';
  const downAfterMs = options.downAfterMs ?? 1000;
  const dir = mkdtempSync(join(tmpdir(), 'tessera-sentinel-'));
  const master = await startRedis();
  const replica = await startRedis({ args: ['--replicaof', '127.0.0.1', String(master.port)] });
  const children: ChildProcess[] = [];
  const ports: number[] = [];
  try {
    await waitFor(
      async () =>
        (await redisCli(replica.port, 'info', 'replication')).includes('master_link_status:up'),
      'the replica to sync',
      10_000,
    );
    for (let index = 0; index < 3; index += 1) {
      const port = await freePort();
      const conf = join(dir, `sentinel-${index}.conf`);
      // Sentinel rewrites its config file as it learns the topology, so each has its own.
      writeFileSync(
        conf,
        [
          `port ${port}`,
          'bind 127.0.0.1',
          `dir ${dir}`,
          `sentinel monitor ${name} 127.0.0.1 ${master.port} 2`,
          `sentinel down-after-milliseconds ${name} ${downAfterMs}`,
          `sentinel failover-timeout ${name} 10000`,
          `sentinel parallel-syncs ${name} 1`,
          '',
        ].join('\n'),
      );
      children.push(spawn('redis-sentinel', [conf, '--loglevel', 'warning'], { stdio: 'ignore' }));
      ports.push(port);
    }
    // Ready when every sentinel knows the replica and the other sentinels.
    for (const port of ports) {
      await waitFor(
        async () => {
          const info = await redisCli(port, 'sentinel', 'master', name).catch(() => '');
          const field = (key: string) =>
            Number(info.split('\n')[info.split('\n').indexOf(key) + 1]);
          return field('num-slaves') >= 1 && field('num-other-sentinels') >= 2;
        },
        `sentinel ${port} to learn the topology`,
        15_000,
      );
    }
  } catch (error) {
    children.forEach((child) => child.kill('SIGKILL'));
    await Promise.all([master.stop(), replica.stop()]);
    throw error;
  }
  return {
    name,
    sentinels: ports.map((port) => `127.0.0.1:${port}`),
    master,
    replica,
    async masterPort() {
      const answer = await redisCli(
        ports[0] as number,
        'sentinel',
        'get-master-addr-by-name',
        name,
      );
      return Number(answer.split('\n')[1]);
    },
    async stop() {
      await Promise.all(
        children.map(
          (child) =>
            new Promise<void>((resolve) => {
              if (child.exitCode !== null || child.signalCode !== null) return resolve();
              child.once('exit', () => resolve());
              child.kill('SIGKILL');
            }),
        ),
      );
      await Promise.all([master.stop(), replica.stop()]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A Redis Cluster of three masters (no replicas) on loopback, slots spread by `redis-cli --cluster create`. */
export interface TestRedisCluster {
  /** `"127.0.0.1:port"` of each node, as `cache.cluster` takes them. */
  nodes: string[];
  ports: number[];
  stop(): Promise<void>;
}

export async function startRedisCluster(): Promise<TestRedisCluster> {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-cluster-'));
  const servers: TestRedis[] = [];
  try {
    for (let index = 0; index < 3; index += 1) {
      const port = await freePort();
      // The bus port defaults to port + 10000, past 65535 for half the ephemeral range: name a free one.
      const busPort = await freePort();
      servers.push(
        await startRedis({
          port,
          args: [
            '--cluster-enabled',
            'yes',
            '--cluster-port',
            String(busPort),
            '--cluster-config-file',
            join(dir, `nodes-${port}.conf`),
            '--cluster-node-timeout',
            '2000',
          ],
        }),
      );
    }
    const nodes = servers.map((server) => `127.0.0.1:${server.port}`);
    await run('redis-cli', ['--cluster', 'create', ...nodes, '--cluster-yes'], { timeout: 15_000 });
    for (const server of servers) {
      await waitFor(
        async () => (await redisCli(server.port, 'cluster', 'info')).includes('cluster_state:ok'),
        `node ${server.port} to see the cluster ok`,
        15_000,
      );
    }
    return {
      nodes,
      ports: servers.map((server) => server.port),
      async stop() {
        await Promise.all(servers.map((server) => server.stop()));
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    await Promise.all(servers.map((server) => server.stop()));
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
}
