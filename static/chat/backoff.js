/**
 * Reconnect delays: exponential backoff with full jitter.
 *
 * Full jitter (a uniform draw from 0 up to the exponential ceiling) spreads the
 * reconnects of a whole audience over the window after a server restart instead of
 * having every tab knock at the same instants.
 */

export const BASE_MS = 500;
export const CAP_MS = 15_000;

export function backoffDelay(attempt, { base = BASE_MS, cap = CAP_MS, random = Math.random } = {}) {
  const exponent = Math.min(Math.max(attempt, 0), 30);
  const ceiling = Math.min(cap, base * 2 ** exponent);
  return Math.floor(random() * ceiling);
}
