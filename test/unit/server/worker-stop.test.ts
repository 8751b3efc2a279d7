import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { workerStop } from '../../../src/server/workers.js';

/**
 * A worker of `tessera serve --workers N` is asked to stop by its primary and, when Ctrl-C
 * signalled the whole process group, by the signal itself: one request, whichever comes first.
 */
function worker() {
  const calls: string[] = [];
  const channel = new EventEmitter();
  const onSignal = workerStop((signal) => calls.push(signal), channel);
  const fromPrimary = (signal: string) => channel.emit('message', { tessera: 'stop', signal });
  return { calls, channel, onSignal, fromPrimary };
}

describe('workerStop', () => {
  it('ok/signal-then-primary-request-is-one-stop', () => {
    const { calls, onSignal, fromPrimary } = worker();
    onSignal('SIGINT');
    fromPrimary('SIGINT');
    expect(calls).toEqual(['SIGINT']);
  });

  it('ok/primary-request-then-the-same-signal-is-one-stop', () => {
    const { calls, onSignal, fromPrimary } = worker();
    fromPrimary('SIGINT');
    onSignal('SIGINT');
    expect(calls).toEqual(['SIGINT']);
  });

  it('ok/primary-request-alone-stops-as-its-signal', () => {
    const { calls, fromPrimary } = worker();
    fromPrimary('SIGTERM');
    expect(calls).toEqual(['SIGTERM']);
  });

  it('ok/a-signal-after-that-is-a-second-one', () => {
    const { calls, onSignal, fromPrimary } = worker();
    fromPrimary('SIGTERM');
    onSignal('SIGTERM');
    onSignal('SIGTERM');
    expect(calls).toEqual(['SIGTERM', 'SIGTERM']);
  });

  it('ok/another-signal-after-the-request-is-a-second-one', () => {
    const { calls, onSignal, fromPrimary } = worker();
    fromPrimary('SIGTERM');
    onSignal('SIGINT');
    expect(calls).toEqual(['SIGTERM', 'SIGINT']);
  });

  it('fail/other-messages-do-not-stop-the-worker', () => {
    const { calls, channel } = worker();
    channel.emit('message', { tessera: 'stop', signal: 'SIGKILL' });
    channel.emit('message', 'stop');
    channel.emit('message', null);
    expect(calls).toEqual([]);
  });
});
