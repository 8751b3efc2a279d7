export {
  startListener,
  listenerSpecs,
  type Listener,
  type ListenerSpec,
  type ListenerTimeouts,
} from './listeners.js';
export {
  loadTlsMaterial,
  watchTlsFiles,
  TlsMaterialError,
  type TlsFiles,
  type TlsMaterial,
  type TlsReloader,
} from './tls.js';
export { verifiedClientCertificate } from './client-cert.js';
export {
  createShutdown,
  SHUTDOWN_DEADLINE_SECONDS,
  type Drainable,
  type ShutdownOptions,
} from './lifecycle.js';
export {
  exitWithPrimary,
  onReopenRequest,
  runPrimary,
  workerCount,
  workerStop,
  type PrimaryOptions,
} from './workers.js';
