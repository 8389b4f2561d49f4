/**
 * Outgoing flow control for QoS ≥ 1 publishes: at most `limit` awaiting their acknowledgement.
 * MQTT 5 brokers announce a Receive Maximum (Mosquitto: 20 by default) and refuse publishes beyond
 * it with "Quota exceeded"; mqtt.js does not enforce it, so the transport does.
 */
export class InflightLimiter {
  private inflight = 0;
  private readonly waiters: Array<() => void> = [];

  constructor(private limit = 65535) {}

  /** Set the limit (e.g. from CONNACK); waiters beyond a lowered limit keep waiting. */
  setLimit(limit: number): void {
    this.limit = Math.max(1, limit);
    this.wake();
  }

  /** Resolve when a slot is free (and take it). */
  acquire(): Promise<void> {
    if (this.inflight < this.limit) {
      this.inflight++;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Free a slot; the next waiter takes it if the limit allows. */
  release(): void {
    this.inflight--;
    this.wake();
  }

  private wake(): void {
    while (this.inflight < this.limit && this.waiters.length > 0) {
      this.inflight++;
      this.waiters.shift()?.();
    }
  }

  /** Publishes in flight and waiting (for tests and health). */
  get state(): { inflight: number; waiting: number; limit: number } {
    return { inflight: this.inflight, waiting: this.waiters.length, limit: this.limit };
  }
}
