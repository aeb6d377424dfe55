/**
 * Applies room events exactly once and in `seq` order.
 *
 * Events at or below the last applied seq are duplicates (a replay overlapping live
 * delivery) and are dropped. Events beyond the next expected seq wait in `held` until
 * the gap is filled by a replay, or until the server says with `synced`/`welcome` that
 * nothing is missing (the gap held events this viewer is not sent, e.g. from a user
 * they blocked).
 */
export class Sequencer {
  constructor(last = null) {
    this.last = last;
    this.held = new Map();
  }

  reset(last) {
    this.last = last;
    this.held.clear();
  }

  /** Offer one event; returns the events now ready to apply, in order. */
  push(event) {
    const seq = event.seq;
    if (!Number.isInteger(seq)) return [];
    if (this.last === null) {
      this.last = seq;
      return [event, ...this.#drain()];
    }
    if (seq <= this.last) return [];
    if (seq === this.last + 1) {
      this.last = seq;
      return [event, ...this.#drain()];
    }
    if (!this.held.has(seq)) this.held.set(seq, event);
    return [];
  }

  /**
   * The server vouched that everything up to `seq` has been sent: what is held up to
   * there is all there is (the gaps were withheld), so it is applied in order, then
   * whatever follows.
   */
  advanceTo(seq) {
    const ready = [];
    if (Number.isInteger(seq) && (this.last === null || seq > this.last)) {
      for (const held of [...this.held.keys()].sort((a, b) => a - b)) {
        if (held > seq) break;
        if (this.last === null || held > this.last) ready.push(this.held.get(held));
        this.held.delete(held);
      }
      this.last = seq;
    }
    for (const held of [...this.held.keys()]) {
      if (held <= this.last) this.held.delete(held);
    }
    return [...ready, ...this.#drain()];
  }

  get hasGap() {
    return this.held.size > 0;
  }

  #drain() {
    const ready = [];
    while (this.held.has(this.last + 1)) {
      this.last += 1;
      ready.push(this.held.get(this.last));
      this.held.delete(this.last);
    }
    return ready;
  }
}
