import { describe, expect, it } from 'vitest';
import { groupFor } from '../../../src/cli/groups.js';

/** `tessera` loads the implementation of one command group, found from argv before parsing. */
describe('groupFor', () => {
  it.each([
    ['ok/command', ['agent', '--endpoint', 'x'], 'agent'],
    ['ok/global-config-before-command', ['-c', 'serve', 'policy', 'lint'], 'policy'],
    ['ok/global-config-long-form', ['--config', 'keys', 'serve'], 'serve'],
    ['ok/global-config-with-equals', ['--config=x.yaml', 'exchange'], 'exchange'],
    ['ok/help-for-a-command', ['help', 'ca'], 'ca'],
    ['none/version', ['--version'], undefined],
    ['none/help', ['--help'], undefined],
    ['none/nothing', [], undefined],
    ['none/unknown-command', ['frobnicate'], undefined],
    ['none/option-value-is-not-a-command', ['agent-typo', 'serve'], undefined],
  ])('%s', (_name, args, expected) => {
    expect(
      groupFor(args)
        ?.commands.map(([name]) => name)
        .find((name) => name === expected),
    ).toBe(expected);
    if (expected === undefined) expect(groupFor(args)).toBeUndefined();
  });
});
