import type { Context } from 'hono';

/**
 * Which routes a listener serves. `all`: the single default listener. `token`: the main listener
 * once `adminListen` takes the operator endpoints away. `public`: what cloud IAM must reach from
 * the internet (discovery, JWKS, trust bundle). `admin`: probes and metrics.
 */
export type ListenerScope = 'all' | 'token' | 'public' | 'admin';

/** The key under which the node listener passes its scope in the hono `env`. */
export const LISTENER_SCOPE_ENV = 'tesseraListener';

const ADMIN_ROUTES = new Set(['/metrics', '/healthz', '/readyz']);
const SCOPES = new Set<string>(['all', 'token', 'public', 'admin']);

const isPublicRoute = (path: string): boolean =>
  path.startsWith('/.well-known/') || path === '/v1/trust-bundle';

/** Whether a listener of `scope` answers `path` at all (anything else is a 404 there). */
export function servesRoute(scope: ListenerScope, path: string): boolean {
  switch (scope) {
    case 'all':
      return true;
    case 'token':
      return !ADMIN_ROUTES.has(path);
    case 'public':
      return isPublicRoute(path);
    case 'admin':
      return ADMIN_ROUTES.has(path);
  }
}

/** The scope of the listener a request came in on; `all` under `app.request()`. */
export function listenerScopeOf(c: Context): ListenerScope {
  const value = (c.env as Record<string, unknown> | undefined)?.[LISTENER_SCOPE_ENV];
  return typeof value === 'string' && SCOPES.has(value) ? (value as ListenerScope) : 'all';
}
