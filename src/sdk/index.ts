export { createClient, ExchangeError, NetworkError, isRetryable } from './client.js';
export type { ClientOptions, Certificate, TesseraClient } from './client.js';
export { runAgent } from './agent.js';
export type { AgentOptions } from './agent.js';
