/**
 * A bounded FIFO with one worker: at most one job runs (one inference at a time keeps the ORT
 * sessions and the two cores of a Pi for the model), at most `size` wait. Jobs never throw into
 * the queue: a job's own `run` handles its errors.
 */

export interface Job {
  /** performance.now() by which the job must start; a later start calls `expire` instead of `run` */
  deadline: number;
  run(): Promise<void>;
  /** called instead of `run` when the deadline passed while waiting */
  expire(): void;
  /** called instead of `run` when the queue is closed with the job still waiting */
  cancel(): void;
}

export class WorkQueue {
  private readonly waiting: Job[] = [];
  private running: Job | undefined;
  private runningSince: number | undefined;
  private closed = false;
  private idleWaiters: Array<() => void> = [];

  /** `onChange` is told the depth and running state after every change. */
  constructor(
    private readonly size: number,
    private readonly onChange: (depth: number, runningSince: number | undefined) => void = () => undefined,
  ) {}

  get depth(): number {
    return this.waiting.length;
  }

  /** performance.now() when the running job started, or undefined when idle. */
  get busySince(): number | undefined {
    return this.runningSince;
  }

  /** Add a job; false when the queue is full or closed. */
  push(job: Job): boolean {
    if (this.closed || this.waiting.length >= this.size) return false;
    this.waiting.push(job);
    this.changed();
    if (!this.running) this.next();
    return true;
  }

  /** Take no more jobs; waiting ones still run. */
  close(): void {
    this.closed = true;
  }

  /** Resolve when nothing runs or waits, or after `timeoutMs`; true when idle. */
  drain(timeoutMs: number): Promise<boolean> {
    if (!this.running && this.waiting.length === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.idleWaiters = this.idleWaiters.filter((w) => w !== onIdle);
        resolve(false);
      }, timeoutMs);
      const onIdle = (): void => {
        clearTimeout(timer);
        resolve(true);
      };
      this.idleWaiters.push(onIdle);
    });
  }

  /** Cancel every waiting job (the running one finishes on its own). */
  cancelWaiting(): void {
    const jobs = this.waiting.splice(0);
    this.changed();
    for (const j of jobs) j.cancel();
  }

  private next(): void {
    const job = this.waiting.shift();
    if (!job) {
      this.running = undefined;
      this.runningSince = undefined;
      this.changed();
      const waiters = this.idleWaiters.splice(0);
      for (const w of waiters) w();
      return;
    }
    if (performance.now() > job.deadline) {
      job.expire();
      this.next();
      return;
    }
    this.running = job;
    this.runningSince = performance.now();
    this.changed();
    job
      .run()
      .catch(() => undefined)
      .finally(() => setImmediate(() => this.next()));
  }

  private changed(): void {
    this.onChange(this.waiting.length, this.runningSince);
  }
}
