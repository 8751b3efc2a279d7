import { expect } from 'vitest';

/**
 * vitest's asymmetric matchers are typed `any`; these give each the type of the value it stands
 * for, so an expected object built from them stays typed (and the typed lint rules see no `any`).
 *
 * @example
 *   await expect(run()).rejects.toMatchObject({ code: 1, stderr: containing('access_denied') });
 */
export const containing = (text: string): string => expect.stringContaining(text) as string;
export const matching = (pattern: RegExp): string => expect.stringMatching(pattern) as string;
export const anyString = (): string => expect.any(String) as string;
export const includingAll = (items: string[]): string[] =>
  expect.arrayContaining(items) as string[];
