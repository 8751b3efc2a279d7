import { ConfigError, parseConfig } from '../../src/config/index.js';

/** The problems `parseConfig` reports for `input`; throws when the config is accepted. */
export function configProblems(input: unknown): string[] {
  try {
    parseConfig(input);
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  throw new Error('expected the config to be refused');
}
