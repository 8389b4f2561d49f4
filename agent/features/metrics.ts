/**
 * Counters shared by features: outcomes by error code, end-to-end latency (rolling window),
 * layers used, the level that served the last request, queue state and event-loop lag.
 */
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import type { ErrorCode } from '../errors.js';

/** Sampling period of the event-loop monitor, ms; the histogram includes it, so lag = value − this. */
const LOOP_RESOLUTION_MS = 10;
const WINDOW = 1024;

export interface MetricsSnapshot {
  served: number;
  errors: Partial<Record<ErrorCode, number>>;
  duplicates: number;
  latency_ms: { p50: number | null; p95: number | null; count: number };
  mean_layers: number | null;
  level: string | null;
  queue_depth: number;
  in_flight: number;
  event_loop_lag_ms: { p50: number; p99: number; max: number };
}

export class Metrics {
  private servedCount = 0;
  private duplicateCount = 0;
  private readonly errorCounts = new Map<ErrorCode, number>();
  private readonly latencies = new Float64Array(WINDOW);
  private latencyN = 0;
  private layersSum = 0;
  private layersN = 0;
  private lastLevel: string | null = null;
  private loop: IntervalHistogram | undefined;
  /** requests waiting in the queue (set by the inference feature) */
  queueDepth = 0;
  /** performance.now() when the running inference started, or undefined when idle */
  inFlightSince: number | undefined;

  /** Start measuring event-loop delay. */
  start(): void {
    if (this.loop) return;
    this.loop = monitorEventLoopDelay({ resolution: LOOP_RESOLUTION_MS });
    this.loop.enable();
  }

  stop(): void {
    this.loop?.disable();
    this.loop = undefined;
  }

  served(totalMs: number, meanLayers: number, level: string): void {
    this.servedCount++;
    this.latencies[this.latencyN % WINDOW] = totalMs;
    this.latencyN++;
    if (Number.isFinite(meanLayers)) {
      this.layersSum += meanLayers;
      this.layersN++;
    }
    this.lastLevel = level;
  }

  error(code: ErrorCode): void {
    this.errorCounts.set(code, (this.errorCounts.get(code) ?? 0) + 1);
  }

  duplicate(): void {
    this.duplicateCount++;
  }

  errorCount(code: ErrorCode): number {
    return this.errorCounts.get(code) ?? 0;
  }

  /** Event-loop lag since the last reset, ms. */
  loopLag(): { p50: number; p99: number; max: number } {
    const h = this.loop;
    if (!h || h.count === 0) return { p50: 0, p99: 0, max: 0 };
    const lag = (ns: number): number => round(Math.max(0, ns / 1e6 - LOOP_RESOLUTION_MS));
    return { p50: lag(h.percentile(50)), p99: lag(h.percentile(99)), max: lag(h.max) };
  }

  resetLoopLag(): void {
    this.loop?.reset();
  }

  snapshot(): MetricsSnapshot {
    const n = Math.min(this.latencyN, WINDOW);
    const sorted = this.latencies.slice(0, n).sort(); // a Float64Array sorts numerically
    return {
      served: this.servedCount,
      errors: Object.fromEntries(this.errorCounts) as Partial<Record<ErrorCode, number>>,
      duplicates: this.duplicateCount,
      latency_ms: { p50: percentile(sorted, 50), p95: percentile(sorted, 95), count: n },
      mean_layers: this.layersN > 0 ? round(this.layersSum / this.layersN) : null,
      level: this.lastLevel,
      queue_depth: this.queueDepth,
      in_flight: this.inFlightSince === undefined ? 0 : 1,
      event_loop_lag_ms: this.loopLag(),
    };
  }
}

/** Nearest-rank percentile of sorted values; null for none. */
export function percentile(sorted: ArrayLike<number>, p: number): number | null {
  if (sorted.length === 0) return null;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return round(sorted[i] ?? 0);
}

function round(x: number): number {
  return Math.round(x * 100) / 100;
}
