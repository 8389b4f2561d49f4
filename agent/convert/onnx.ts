/**
 * ONNX model writer: a small graph builder that serializes ModelProto with our own protobuf writer.
 * Field numbers follow onnx/onnx.proto (IR version 8).
 */
import { ProtoWriter } from './protobuf.js';
import type { WeightSink } from '../engine/weightFile.js';

/** ONNX TensorProto.DataType values used here. */
export const DType = {
  FLOAT: 1,
  UINT8: 2,
  INT8: 3,
  INT32: 6,
  INT64: 7,
  BOOL: 9,
  FLOAT16: 10,
} as const;
export type DTypeCode = (typeof DType)[keyof typeof DType];

const TYPE_NAMES: Record<DTypeCode, string> = { 1: 'float32', 2: 'uint8', 3: 'int8', 6: 'int32', 7: 'int64', 9: 'bool', 10: 'float16' };

export type Dim = number | string;
export type AttrValue = number | string | number[] | { float: number } | { floats: number[] } | { ints: number[] };

export interface Tensor {
  name: string;
  dtype: DTypeCode;
  dims: number[];
  /** raw little-endian bytes */
  raw: Uint8Array;
}

interface NodeSpec {
  op: string;
  inputs: string[];
  outputs: string[];
  attrs: Record<string, AttrValue>;
  domain: string;
  name: string;
}

interface ValueInfo {
  name: string;
  dtype: DTypeCode;
  shape: Dim[];
}

export function rawOf(a: Float32Array | Int32Array | Uint8Array | Int8Array | Uint16Array | BigInt64Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

export class GraphBuilder {
  private nodes: NodeSpec[] = [];
  private inits: Tensor[] = [];
  private initNames = new Set<string>();
  private inputs: ValueInfo[] = [];
  private outputs: ValueInfo[] = [];
  private counter = 0;
  private usesMs = false;
  /** weight files the last toBytes() referenced */
  readonly externalFiles = new Set<string>();

  constructor(readonly name: string) {}

  /** A fresh value name with a readable prefix. */
  fresh(prefix: string): string {
    return `${prefix}_${this.counter++}`;
  }

  input(name: string, dtype: DTypeCode, shape: Dim[]): string {
    this.inputs.push({ name, dtype, shape });
    return name;
  }

  output(name: string, dtype: DTypeCode, shape: Dim[]): string {
    this.outputs.push({ name, dtype, shape });
    return name;
  }

  /** Add a constant; a second call with the same name reuses the first (same content assumed). */
  initializer(name: string, dtype: DTypeCode, dims: number[], raw: Uint8Array): string {
    if (this.initNames.has(name)) return name;
    this.initNames.add(name);
    this.inits.push({ name, dtype, dims, raw });
    return name;
  }

  f32(name: string, dims: number[], data: Float32Array): string {
    return this.initializer(name, DType.FLOAT, dims, rawOf(data));
  }

  i64(name: string, values: number[]): string {
    return this.initializer(name, DType.INT64, [values.length], rawOf(BigInt64Array.from(values.map(BigInt))));
  }

  /** Add a node; returns its output names (fresh ones when `outputs` is a count). */
  node(op: string, inputs: string[], outputs: string[] | number = 1, attrs: Record<string, AttrValue> = {}, domain = ''): string[] {
    const outs = typeof outputs === 'number' ? Array.from({ length: outputs }, () => this.fresh(op)) : outputs;
    if (domain === 'com.microsoft') this.usesMs = true;
    this.nodes.push({ op, inputs, outputs: outs, attrs, domain, name: this.fresh(`n_${op}`) });
    return outs;
  }

  /**
   * Give a computed value a fixed name (a graph output): the node that produces it writes under the
   * new name, so no Identity kernel runs for it. Graph inputs and initializers get an Identity.
   */
  alias(value: string, name: string): string {
    const producer = this.nodes.find((n) => n.outputs.includes(value));
    if (!producer) return this.op('Identity', [value], {}, '', name);
    producer.outputs = producer.outputs.map((o) => (o === value ? name : o));
    for (const n of this.nodes) n.inputs = n.inputs.map((i) => (i === value ? name : i));
    return name;
  }

  /** Single-output convenience. */
  op(op: string, inputs: string[], attrs: Record<string, AttrValue> = {}, domain = '', outName?: string): string {
    return this.node(op, inputs, outName ? [outName] : 1, attrs, domain)[0]!;
  }

  /** Graph inputs and outputs with ONNX-runtime type names, for the bundle manifest. */
  signature(): { inputs: { name: string; type: string; shape: Dim[] }[]; outputs: { name: string; type: string; shape: Dim[] }[]; weight_bytes: number } {
    const conv = (v: ValueInfo) => ({ name: v.name, type: TYPE_NAMES[v.dtype], shape: v.shape });
    return { inputs: this.inputs.map(conv), outputs: this.outputs.map(conv), weight_bytes: this.inits.reduce((a, t) => a + t.raw.byteLength, 0) };
  }

  /**
   * Serialize. With `weights`, initializers the sink accepts are stored there once and referenced
   * as external data (location relative to the graph file, which must sit beside it).
   */
  toBytes(opset = 21, weights?: WeightSink): Uint8Array {
    this.externalFiles.clear();
    const w = new ProtoWriter();
    w.int(1, 8); // ir_version
    w.string(2, 'sedac'); // producer_name
    w.string(3, '0.1.0'); // producer_version
    w.message(7, (g) => this.writeGraph(g, weights));
    w.message(8, (o) => o.string(1, '').int(2, opset));
    if (this.usesMs) w.message(8, (o) => o.string(1, 'com.microsoft').int(2, 1));
    return w.finish();
  }

  private writeGraph(g: ProtoWriter, weights: WeightSink | undefined): void {
    for (const n of this.nodes) {
      g.message(1, (nw) => {
        for (const i of n.inputs) nw.string(1, i);
        for (const o of n.outputs) nw.string(2, o);
        nw.string(3, n.name);
        nw.string(4, n.op);
        for (const [k, v] of Object.entries(n.attrs)) nw.message(5, (aw) => writeAttr(aw, k, v));
        if (n.domain) nw.string(7, n.domain);
      });
    }
    g.string(2, this.name);
    for (const t of this.inits) g.message(5, (tw) => writeTensor(tw, t, weights, this.externalFiles));
    for (const v of this.inputs) g.message(11, (vw) => writeValueInfo(vw, v));
    for (const v of this.outputs) g.message(12, (vw) => writeValueInfo(vw, v));
  }
}

function writeAttr(w: ProtoWriter, name: string, v: AttrValue): void {
  w.string(1, name);
  if (typeof v === 'number') {
    if (!Number.isInteger(v)) throw new Error(`attribute ${name}: use {float: x} for non-integers`);
    w.int(3, v).int(20, 2); // INT
  } else if (typeof v === 'string') {
    w.string(4, v).int(20, 3); // STRING
  } else if (Array.isArray(v)) {
    for (const x of v) w.int(8, x);
    w.int(20, 7); // INTS
  } else if ('float' in v) {
    w.float(2, v.float).int(20, 1); // FLOAT
  } else if ('floats' in v) {
    for (const x of v.floats) w.float(7, x);
    w.int(20, 6); // FLOATS
  } else {
    for (const x of v.ints) w.int(8, x);
    w.int(20, 7);
  }
}

function writeTensor(w: ProtoWriter, t: Tensor, weights: WeightSink | undefined, files: Set<string>): void {
  for (const d of t.dims) w.int(1, d);
  w.int(2, t.dtype);
  w.string(8, t.name);
  const slot = weights?.place(t.raw);
  if (!slot) {
    w.bytes(9, t.raw);
    return;
  }
  files.add(slot.file);
  // TensorProto.external_data (13): key/value pairs; data_location (14) = EXTERNAL
  const entry = (k: string, v: string) => w.message(13, (e) => e.string(1, k).string(2, v));
  entry('location', slot.file);
  entry('offset', String(slot.offset));
  entry('length', String(slot.length));
  w.int(14, 1);
}

function writeValueInfo(w: ProtoWriter, v: ValueInfo): void {
  w.string(1, v.name);
  w.message(2, (tp) =>
    tp.message(1, (tt) => {
      tt.int(1, v.dtype);
      tt.message(2, (sh) => {
        for (const d of v.shape) sh.message(1, (dw) => (typeof d === 'number' ? dw.int(1, d) : dw.string(2, d)));
      });
    }),
  );
}
