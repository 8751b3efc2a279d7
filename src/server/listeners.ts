import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { getRequestListener } from '@hono/node-server';
import { LISTENER_SCOPE_ENV, type DirectHandler, type ListenerScope } from '../sts/index.js';
import type { ListenConfig, ListenerConfig } from '../config/index.js';
import type { TlsMaterial } from './tls.js';

/** One socket the broker listens on, and which routes it serves. */
export interface ListenerSpec {
  /** The config field it comes from, for logs: `listen`, `publicListen`, `adminListen`. */
  name: string;
  scope: ListenerScope;
  host: string;
  port: number;
  maxConnections: number;
  tls?: { material: TlsMaterial; requestClientCert: boolean };
}

export interface ListenerTimeouts {
  headersTimeoutMs: number;
  requestTimeoutMs: number;
}

export interface Listener {
  name: string;
  scope: ListenerScope;
  url: string;
  port: number;
  server: Server;
  /** Swap the certificate for new handshakes; connections already open keep theirs. */
  setSecureContext(material: TlsMaterial): void;
  /**
   * Stop accepting: idle keep-alive connections close now, busy ones after their current response.
   * Resolves when the last connection is gone.
   */
  stop(): Promise<void>;
  /** The drain deadline passed: cut whatever is still open. */
  destroyConnections(): void;
}

/**
 * HTTP keep-alive between requests: longer than load balancers' idle timeouts (60 s for most), so a
 * balancer never sends a request on a connection the broker is closing at that very moment.
 */
const KEEP_ALIVE_TIMEOUT_MS = 65_000;

type Fetch = (request: Request, env: Record<string, unknown>) => Response | Promise<Response>;

/**
 * Start one listener; `direct` sees each request before hono (the token endpoint's fast path). Node checks header and request timeouts only every
 * `connectionsCheckingInterval` (30 s by default), so a silent half-request would outlive the
 * configured timeout by up to 30 s: the interval is a fraction of the header timeout instead.
 */
export async function startListener(
  spec: ListenerSpec,
  fetch: Fetch,
  timeouts: ListenerTimeouts,
  direct?: DirectHandler,
): Promise<Listener> {
  let stopping = false;
  const handle = getRequestListener((request, env) =>
    fetch(request, { ...env, [LISTENER_SCOPE_ENV]: spec.scope }),
  );
  const onRequest = (request: IncomingMessage, response: ServerResponse): void => {
    // While stopping, a keep-alive connection gets its answer and is then closed.
    if (stopping) response.setHeader('Connection', 'close');
    if (direct?.(request, response, spec.scope)) return;
    void handle(request, response);
  };
  const common = {
    headersTimeout: timeouts.headersTimeoutMs,
    requestTimeout: timeouts.requestTimeoutMs,
    keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
    connectionsCheckingInterval: Math.max(
      100,
      Math.min(1000, Math.floor(timeouts.headersTimeoutMs / 4)),
    ),
  };
  const server: Server = spec.tls
    ? createHttpsServer(
        {
          ...spec.tls.material.options,
          ...common,
          // A silent TLS client must not hold a descriptor for Node's default 120 s either.
          handshakeTimeout: timeouts.headersTimeoutMs,
          // Asked for, never required at the handshake: discovery, JWKS and the trust bundle stay
          // public, and the token endpoint answers a missing certificate with a proper 401.
          requestCert: spec.tls.requestClientCert,
          rejectUnauthorized: false,
        },
        onRequest,
      )
    : createHttpServer(common, onRequest);
  server.maxConnections = spec.maxConnections;
  if (spec.tls) server.on('secureConnection', (socket: TLSSocket) => socket.disableRenegotiation());

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(spec.port, spec.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return {
    name: spec.name,
    scope: spec.scope,
    url: `${spec.tls ? 'https' : 'http'}://${host}:${address.port}`,
    port: address.port,
    server,
    setSecureContext(material) {
      (server as unknown as { setSecureContext(options: object): void }).setSecureContext(
        material.options,
      );
    },
    stop() {
      stopping = true;
      return new Promise<void>((resolve) => {
        if (!server.listening) return resolve();
        server.close(() => resolve());
        server.closeIdleConnections();
      });
    },
    destroyConnections() {
      server.closeAllConnections();
    },
  };
}

/** The listeners a config asks for, main first. */
export function listenerSpecs(
  config: {
    listen: ListenConfig;
    publicListen?: ListenerConfig | undefined;
    adminListen?: ListenerConfig | undefined;
  },
  material?: TlsMaterial,
): ListenerSpec[] {
  const { listen, publicListen, adminListen } = config;
  const specs: ListenerSpec[] = [
    {
      name: 'listen',
      // With publicListen the main listener keeps serving discovery too: pods and in-cluster
      // relying parties use it; only adminListen takes routes away from it.
      scope: adminListen ? 'token' : 'all',
      host: listen.host,
      port: listen.port,
      maxConnections: listen.maxConnections,
      ...(material && {
        tls: { material, requestClientCert: listen.tls?.clientCaFile !== undefined },
      }),
    },
  ];
  if (publicListen) specs.push({ name: 'publicListen', scope: 'public', ...publicListen });
  if (adminListen) specs.push({ name: 'adminListen', scope: 'admin', ...adminListen });
  return specs;
}
