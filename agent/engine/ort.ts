/**
 * The one door to onnxruntime-node. Everything else in SEDAC goes through these helpers, so that
 * session options, thread counts and error mapping live in one place.
 */
import * as ort from 'onnxruntime-node';
import { SedacError } from '../errors.js';

export type OrtTensor = ort.Tensor;
export type Feeds = Record<string, ort.Tensor>;

export interface SessionOptions {
  /** ORT intra-op threads; default 1 (best for small models: each session owns its own pool) */
  threads?: number;
  /** graph optimization level; default 'all' */
  optimization?: 'disabled' | 'basic' | 'extended' | 'all';
  /** let kernels pack constant weights at load (a copy per session, faster runs); default true */
  prepack?: boolean;
}

export class Session {
  private constructor(
    private readonly inner: ort.InferenceSession,
    readonly label: string,
  ) {}

  static async load(pathOrBytes: string | Uint8Array, label: string, opts: SessionOptions = {}): Promise<Session> {
    const options: ort.InferenceSession.SessionOptions = {
      intraOpNumThreads: opts.threads ?? 1,
      interOpNumThreads: 1,
      executionMode: 'sequential',
      graphOptimizationLevel: opts.optimization ?? 'all',
      enableCpuMemArena: true,
      enableMemPattern: true,
      ...(opts.prepack === false ? { extra: { session: { disable_prepacking: '1' } } } : {}),
    };
    try {
      const s =
        typeof pathOrBytes === 'string'
          ? await ort.InferenceSession.create(pathOrBytes, options)
          : await ort.InferenceSession.create(pathOrBytes, options);
      return new Session(s, label);
    } catch (err) {
      throw new SedacError('E_MODEL_LOAD', `cannot load graph ${label}: ${firstLine(err)}`);
    }
  }

  get inputNames(): readonly string[] {
    return this.inner.inputNames;
  }

  get outputNames(): readonly string[] {
    return this.inner.outputNames;
  }

  /** Run the graph. Failures name the inputs and their dims, never the data. */
  async run(feeds: Feeds): Promise<Feeds> {
    try {
      return (await this.inner.run(feeds)) as Feeds;
    } catch (err) {
      const dims = Object.entries(feeds)
        .map(([k, t]) => `${k}:${t.type}[${t.dims.join(',')}]`)
        .join(' ');
      throw new SedacError('E_INFER', `${this.label} failed (${dims}): ${firstLine(err)}`);
    }
  }

  async release(): Promise<void> {
    await this.inner.release();
  }
}

function firstLine(err: unknown): string {
  const m = err instanceof Error ? err.message : String(err);
  return m.split('\n')[0] ?? m;
}

export function f32(data: Float32Array, dims: number[]): ort.Tensor {
  return new ort.Tensor('float32', data, dims);
}

export function i64(data: BigInt64Array, dims: number[]): ort.Tensor {
  return new ort.Tensor('int64', data, dims);
}

export function i32(data: Int32Array, dims: number[]): ort.Tensor {
  return new ort.Tensor('int32', data, dims);
}

/** The Float32Array behind a float32 tensor. */
export function floats(t: ort.Tensor | undefined, what: string): Float32Array {
  if (!t || t.type !== 'float32') throw new SedacError('E_INFER', `expected a float32 output ${what}`);
  return t.data as Float32Array;
}

export const ORT_VERSION: string = ort.env.versions.common ?? 'unknown';
