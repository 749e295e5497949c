// grad_mode.ts: whether ops are being recorded for backward (on by default).
//
// noGrad(fn) runs fn with recording off (evaluation, optimizer updates, backward rules);
// enableGrad(fn) turns it back on inside such a region. Both restore the previous mode even
// when fn throws.
import { ValueError } from '../tensor/errors.ts';

let enabled = true;

export function isGradEnabled(): boolean {
  return enabled;
}

export function setGradEnabled(on: boolean): void {
  if (typeof on !== 'boolean') throw new ValueError('setGradEnabled: expected a boolean');
  enabled = on;
}

function withMode<T>(on: boolean, fn: () => T): T {
  if (typeof fn !== 'function') throw new ValueError('noGrad/enableGrad: expected a function');
  const prev = enabled;
  enabled = on;
  try {
    return fn();
  } finally {
    enabled = prev;
  }
}

export const noGrad = <T>(fn: () => T): T => withMode(false, fn);
export const enableGrad = <T>(fn: () => T): T => withMode(true, fn);
