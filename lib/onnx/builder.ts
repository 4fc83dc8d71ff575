/**
 * Builds ONNX models (ModelProto bytes) node by node, without any protobuf library.
 * Field numbers follow onnx.proto3; only the parts of the schema our graphs need are written.
 */
import { ProtoWriter } from './protobuf-writer';

/** TensorProto.DataType values we write. */
export const TensorElementType = {
  FLOAT: 1,
  INT32: 6,
  INT64: 7,
} as const;
export type TensorElementType = (typeof TensorElementType)[keyof typeof TensorElementType];

export type TensorData = Float32Array | Int32Array | BigInt64Array;

export interface TensorValue {
  data: TensorData;
  dims: readonly number[];
}

/** A graph dimension: a fixed size, or a symbolic name (dim_param) such as 'N'. */
export type Dim = number | string;

/**
 * Node attribute. A plain number is an INT when it is an integer and a FLOAT otherwise;
 * wrap it as `{ f }` to force FLOAT (e.g. `alpha: { f: 0 }`) or `{ i }` to force INT.
 * A plain number array is INTS and must hold integers only.
 */
export type AttrValue =
  | number
  | string
  | readonly number[]
  | { i: number }
  | { f: number }
  | { ints: readonly number[] }
  | { floats: readonly number[] }
  | { strings: readonly string[] }
  | { tensor: TensorValue };

export interface NodeOptions {
  /** Output count (names generated) or explicit output names. Default 1. */
  outputs?: number | readonly string[];
  name?: string;
  domain?: string;
}

export interface ModelOptions {
  opset?: number;
  irVersion?: number;
  producer?: string;
  producerVersion?: string;
  /** Opset versions of non-default domains used by nodes (default 1 each). */
  domainVersions?: Record<string, number>;
}

// Field numbers (onnx.proto3).
const MODEL = { irVersion: 1, producerName: 2, producerVersion: 3, graph: 7, opsetImport: 8 } as const;
const OPSET_ID = { domain: 1, version: 2 } as const;
const GRAPH = { node: 1, name: 2, initializer: 5, input: 11, output: 12 } as const;
const NODE = { input: 1, output: 2, name: 3, opType: 4, attribute: 5, domain: 7 } as const;
const ATTRIBUTE = { name: 1, f: 2, i: 3, s: 4, t: 5, floats: 7, ints: 8, strings: 9, type: 20 } as const;
const ATTRIBUTE_TYPE = { FLOAT: 1, INT: 2, STRING: 3, TENSOR: 4, FLOATS: 6, INTS: 7, STRINGS: 8 } as const;
const TENSOR = { dims: 1, dataType: 2, name: 8, rawData: 9 } as const;
const VALUE_INFO = { name: 1, type: 2 } as const;
const TYPE = { tensorType: 1 } as const;
const TENSOR_TYPE = { elemType: 1, shape: 2 } as const;
const SHAPE = { dim: 1 } as const;
const DIMENSION = { dimValue: 1, dimParam: 2 } as const;

interface NodeRecord {
  opType: string;
  inputs: readonly string[];
  outputs: readonly string[];
  name: string;
  domain: string;
  attrs: Record<string, AttrValue>;
}

interface ValueInfoRecord {
  name: string;
  elemType: TensorElementType;
  dims: readonly Dim[] | undefined;
}

const HOST_IS_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** BigInt64Array from plain integers (shape vectors, axes, indices). */
export function int64Array(values: readonly number[]): BigInt64Array {
  return BigInt64Array.from(values, (v) => {
    if (!Number.isSafeInteger(v)) throw new RangeError(`Expected safe integers for int64 data but received ${v}`);
    return BigInt(v);
  });
}

export function elementTypeOf(data: TensorData): TensorElementType {
  if (data instanceof Float32Array) return TensorElementType.FLOAT;
  if (data instanceof Int32Array) return TensorElementType.INT32;
  if (data instanceof BigInt64Array) return TensorElementType.INT64;
  throw new TypeError(`Expected Float32Array, Int32Array or BigInt64Array for tensor data but received ${describe(data)}`);
}

export class OnnxGraphBuilder {
  readonly name: string;
  private readonly nodes: NodeRecord[] = [];
  private readonly initializers = new Map<string, TensorValue>();
  private readonly inputs: ValueInfoRecord[] = [];
  private readonly outputs: ValueInfoRecord[] = [];
  /** Every value name defined so far (inputs, initializers, node outputs): ONNX graphs are SSA. */
  private readonly values = new Set<string>();
  private readonly nodeNames = new Set<string>();
  private readonly nameCounters = new Map<string, number>();

  constructor(name = 'graph') {
    this.name = name;
  }

  /** A value name not used yet, derived from `base`. */
  uniqueName(base: string): string {
    if (!this.values.has(base)) return base;
    let n = this.nameCounters.get(base) ?? 1;
    while (this.values.has(`${base}_${n}`)) n++;
    this.nameCounters.set(base, n + 1);
    return `${base}_${n}`;
  }

  hasValue(name: string): boolean {
    return this.values.has(name);
  }

  input(name: string, dims: readonly Dim[], elemType: TensorElementType = TensorElementType.FLOAT): string {
    this.defineValue(name, 'graph input');
    this.inputs.push({ name, elemType, dims: checkDims(dims, name) });
    return name;
  }

  initializer(name: string, data: TensorData, dims: readonly number[]): string {
    checkTensor(data, dims, `initializer '${name}'`);
    this.defineValue(name, 'initializer');
    this.initializers.set(name, { data, dims: [...dims] });
    return name;
  }

  /**
   * Appends a node; returns its output names. Inputs must already be defined, except '' which
   * marks an omitted optional input (e.g. Resize's roi).
   */
  node(opType: string, inputs: readonly string[], attrs: Record<string, AttrValue> = {}, opts: NodeOptions = {}): string[] {
    if (typeof opType !== 'string' || opType.length === 0) {
      throw new TypeError(`Expected a non-empty string for opType but received ${describe(opType)}`);
    }
    for (const input of inputs) {
      if (input !== '' && !this.values.has(input)) {
        throw new RangeError(`Expected a defined value for an input of ${opType} but received '${input}'`);
      }
    }
    for (const [key, value] of Object.entries(attrs)) validateAttr(key, value);

    const name = this.uniqueNodeName(opts.name ?? opType);
    const requested = opts.outputs ?? 1;
    const outputs =
      typeof requested === 'number'
        ? Array.from({ length: requested }, (_, i) => this.uniqueName(`${name}_output_${i}`))
        : [...requested];
    for (const output of outputs) this.defineValue(output, `output of ${opType}`);

    this.nodes.push({ opType, inputs: [...inputs], outputs, name, domain: opts.domain ?? '', attrs: { ...attrs } });
    return outputs;
  }

  /** Declares an existing value as a graph output; without dims the shape is left to inference. */
  output(name: string, dims?: readonly Dim[], elemType: TensorElementType = TensorElementType.FLOAT): string {
    if (!this.values.has(name)) {
      throw new RangeError(`Expected a defined value for graph output but received '${name}'`);
    }
    this.outputs.push({ name, elemType, dims: dims === undefined ? undefined : checkDims(dims, name) });
    return name;
  }

  initializerNames(): string[] {
    return [...this.initializers.keys()];
  }

  /** Initializers that no node consumes: usually a wiring mistake (onnxruntime drops them silently). */
  unusedInitializers(): string[] {
    const consumed = new Set<string>(this.outputs.map((o) => o.name));
    for (const node of this.nodes) for (const input of node.inputs) consumed.add(input);
    return this.initializerNames().filter((name) => !consumed.has(name));
  }

  get nodeCount(): number {
    return this.nodes.length;
  }

  toBytes(opts: ModelOptions = {}): Uint8Array {
    const opset = opts.opset ?? 13;
    const model = new ProtoWriter(1 << 16);
    model.int(MODEL.irVersion, opts.irVersion ?? 8);
    model.string(MODEL.producerName, opts.producer ?? 'facesight');
    if (opts.producerVersion !== undefined) model.string(MODEL.producerVersion, opts.producerVersion);
    model.message(MODEL.graph, this.encodeGraph());
    model.message(MODEL.opsetImport, new ProtoWriter().int(OPSET_ID.version, opset));
    const customDomains = new Set(this.nodes.map((n) => n.domain).filter((d) => d !== ''));
    for (const domain of customDomains) {
      const version = opts.domainVersions?.[domain] ?? 1;
      model.message(MODEL.opsetImport, new ProtoWriter().string(OPSET_ID.domain, domain).int(OPSET_ID.version, version));
    }
    return model.finish();
  }

  private encodeGraph(): ProtoWriter {
    let initializerBytes = 0;
    for (const t of this.initializers.values()) initializerBytes += t.data.byteLength;
    const graph = new ProtoWriter(initializerBytes + (1 << 16));
    for (const node of this.nodes) graph.message(GRAPH.node, encodeNode(node));
    graph.string(GRAPH.name, this.name);
    for (const [name, tensor] of this.initializers) graph.message(GRAPH.initializer, encodeTensor(tensor, name));
    for (const input of this.inputs) graph.message(GRAPH.input, encodeValueInfo(input));
    for (const output of this.outputs) graph.message(GRAPH.output, encodeValueInfo(output));
    return graph;
  }

  private defineValue(name: string, what: string): void {
    if (typeof name !== 'string' || name.length === 0) {
      throw new TypeError(`Expected a non-empty string for the name of a ${what} but received ${describe(name)}`);
    }
    if (this.values.has(name)) {
      throw new RangeError(`Expected a new value name for a ${what} but received '${name}', which is already defined`);
    }
    this.values.add(name);
  }

  private uniqueNodeName(base: string): string {
    let name = base;
    for (let n = 1; this.nodeNames.has(name); n++) name = `${base}_${n}`;
    this.nodeNames.add(name);
    return name;
  }
}

function encodeNode(node: NodeRecord): ProtoWriter {
  const w = new ProtoWriter();
  for (const input of node.inputs) w.string(NODE.input, input);
  for (const output of node.outputs) w.string(NODE.output, output);
  w.string(NODE.name, node.name);
  w.string(NODE.opType, node.opType);
  for (const [name, value] of Object.entries(node.attrs)) w.message(NODE.attribute, encodeAttr(name, value));
  if (node.domain !== '') w.string(NODE.domain, node.domain);
  return w;
}

function encodeAttr(name: string, value: AttrValue): ProtoWriter {
  const w = new ProtoWriter().string(ATTRIBUTE.name, name);
  if (typeof value === 'number') {
    return Number.isInteger(value)
      ? w.int(ATTRIBUTE.i, value).int(ATTRIBUTE.type, ATTRIBUTE_TYPE.INT)
      : w.float(ATTRIBUTE.f, value).int(ATTRIBUTE.type, ATTRIBUTE_TYPE.FLOAT);
  }
  if (typeof value === 'string') return w.string(ATTRIBUTE.s, value).int(ATTRIBUTE.type, ATTRIBUTE_TYPE.STRING);
  if (isNumberArray(value)) return w.packedInts(ATTRIBUTE.ints, value).int(ATTRIBUTE.type, ATTRIBUTE_TYPE.INTS);
  if ('i' in value) return w.int(ATTRIBUTE.i, value.i).int(ATTRIBUTE.type, ATTRIBUTE_TYPE.INT);
  if ('f' in value) return w.float(ATTRIBUTE.f, value.f).int(ATTRIBUTE.type, ATTRIBUTE_TYPE.FLOAT);
  if ('ints' in value) return w.packedInts(ATTRIBUTE.ints, value.ints).int(ATTRIBUTE.type, ATTRIBUTE_TYPE.INTS);
  if ('floats' in value) return w.packedFloats(ATTRIBUTE.floats, value.floats).int(ATTRIBUTE.type, ATTRIBUTE_TYPE.FLOATS);
  if ('strings' in value) {
    for (const s of value.strings) w.string(ATTRIBUTE.strings, s);
    return w.int(ATTRIBUTE.type, ATTRIBUTE_TYPE.STRINGS);
  }
  return w.message(ATTRIBUTE.t, encodeTensor(value.tensor)).int(ATTRIBUTE.type, ATTRIBUTE_TYPE.TENSOR);
}

function encodeTensor(tensor: TensorValue, name?: string): ProtoWriter {
  const w = new ProtoWriter(tensor.data.byteLength + 64);
  // A scalar has no dims entry at all; empty packed fields are simply omitted.
  if (tensor.dims.length > 0) w.packedInts(TENSOR.dims, tensor.dims);
  w.int(TENSOR.dataType, elementTypeOf(tensor.data));
  if (name !== undefined) w.string(TENSOR.name, name);
  w.bytes(TENSOR.rawData, littleEndianBytes(tensor.data));
  return w;
}

function encodeValueInfo(info: ValueInfoRecord): ProtoWriter {
  const tensorType = new ProtoWriter().int(TENSOR_TYPE.elemType, info.elemType);
  if (info.dims !== undefined) {
    const shape = new ProtoWriter();
    for (const dim of info.dims) {
      const d = new ProtoWriter();
      if (typeof dim === 'number') d.int(DIMENSION.dimValue, dim);
      else d.string(DIMENSION.dimParam, dim);
      shape.message(SHAPE.dim, d);
    }
    tensorType.message(TENSOR_TYPE.shape, shape);
  }
  return new ProtoWriter()
    .string(VALUE_INFO.name, info.name)
    .message(VALUE_INFO.type, new ProtoWriter().message(TYPE.tensorType, tensorType));
}

/** raw_data is little-endian regardless of the host. */
function littleEndianBytes(data: TensorData): Uint8Array {
  const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (HOST_IS_LITTLE_ENDIAN) return bytes;
  const swapped = new Uint8Array(bytes.length);
  const width = data.BYTES_PER_ELEMENT;
  for (let i = 0; i < bytes.length; i += width) {
    for (let b = 0; b < width; b++) swapped[i + b] = bytes[i + width - 1 - b]!;
  }
  return swapped;
}

function checkTensor(data: TensorData, dims: readonly number[], what: string): void {
  elementTypeOf(data);
  let count = 1;
  for (const d of dims) {
    if (!Number.isSafeInteger(d) || d < 0) {
      throw new RangeError(`Expected non-negative integer dims for ${what} but received [${dims.join(', ')}]`);
    }
    count *= d;
  }
  if (count !== data.length) {
    throw new RangeError(`Expected ${count} elements for ${what} of dims [${dims.join(', ')}] but received ${data.length}`);
  }
}

function checkDims(dims: readonly Dim[], name: string): Dim[] {
  for (const d of dims) {
    const ok = typeof d === 'string' ? d.length > 0 : Number.isSafeInteger(d) && d >= 0;
    if (!ok) {
      throw new RangeError(`Expected non-negative integers or symbolic names for the dims of '${name}' but received ${describe(d)}`);
    }
  }
  return [...dims];
}

function validateAttr(key: string, value: AttrValue): void {
  if (typeof value === 'number') {
    if (Number.isNaN(value)) throw new RangeError(`Expected a number for attribute '${key}' but received NaN`);
    return;
  }
  if (typeof value === 'string') return;
  if (isNumberArray(value)) {
    if (!value.every((v) => Number.isSafeInteger(v))) {
      throw new TypeError(`Expected integers for attribute '${key}' (wrap floats as { floats }) but received [${value.join(', ')}]`);
    }
    return;
  }
  if (value === null || typeof value !== 'object') {
    throw new TypeError(`Expected an attribute value for '${key}' but received ${describe(value)}`);
  }
  if ('i' in value && !Number.isSafeInteger(value.i)) {
    throw new TypeError(`Expected an integer for attribute '${key}' but received ${value.i}`);
  }
  if ('ints' in value && !value.ints.every((v) => Number.isSafeInteger(v))) {
    throw new TypeError(`Expected integers for attribute '${key}' but received [${value.ints.join(', ')}]`);
  }
  if ('tensor' in value) checkTensor(value.tensor.data, value.tensor.dims, `tensor attribute '${key}'`);
  if (!['i', 'f', 'ints', 'floats', 'strings', 'tensor'].some((k) => k in value)) {
    throw new TypeError(`Expected one of i, f, ints, floats, strings, tensor for attribute '${key}' but received ${describe(value)}`);
  }
}

function isNumberArray(value: unknown): value is readonly number[] {
  return Array.isArray(value) && value.every((v) => typeof v === 'number');
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (ArrayBuffer.isView(value)) return value.constructor.name;
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') return `an object with keys [${Object.keys(value).join(', ')}]`;
  return `${typeof value} ${String(value)}`;
}
