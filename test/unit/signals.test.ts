import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { onFirstStopSignal } from '../../src/cli/signals.ts';

describe('the controller stops on its first SIGTERM or SIGINT', () => {
  for (const [first, second] of [
    ['SIGTERM', 'SIGINT'],
    ['SIGINT', 'SIGTERM'],
    ['SIGTERM', 'SIGTERM'],
  ] as const) {
    it(`${first} starts one shutdown; a later ${second} is left to the default action`, () => {
      const proc = new EventEmitter();
      const shutdowns: string[] = [];
      onFirstStopSignal((s) => shutdowns.push(s), proc);
      proc.emit(first);
      expect(shutdowns).toEqual([first]);
      // src/cli.ts exits on a signal when its own handler is the only one left.
      expect(proc.listenerCount('SIGTERM') + proc.listenerCount('SIGINT')).toBe(0);
      proc.emit(second);
      expect(shutdowns).toEqual([first]);
    });
  }
});
