// A minimal ONNX (protobuf) reader for tests: the graph's initializers, nodes, inputs and outputs,
// decoded straight from the wire format so that tests can check what a writer or converter put in a
// model without trusting the writer's own bookkeeping. Field numbers from onnx.proto3.

export interface ReadTensor {
  name: string;
  dims: number[];
  dataType: number;
  /** FLOAT tensors as Float32Array, INT64 as BigInt64Array, INT32 as Int32Array; otherwise raw bytes. */
  data: Float32Array | BigInt64Array | Int32Array | Uint8Array;
}

export interface ReadNode {
  opType: string;
  name: string;
  inputs: string[];
  outputs: string[];
}

export interface ReadGraph {
  name: string;
  initializers: ReadTensor[];
  nodes: ReadNode[];
  inputs: string[];
  outputs: string[];
}

interface Field {
  number: number;
  wire: number;
  /** varint value (wire 0), or the payload (wire 2), or fixed bytes (wire 1/5). */
  value: bigint | Uint8Array;
}

function* fields(buf: Uint8Array): Generator<Field> {
  let at = 0;
  const varint = (): bigint => {
    let result = 0n;
    let shift = 0n;
    for (;;) {
      if (at >= buf.length) throw new Error('truncated varint');
      const b = buf[at++];
      result |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return result;
      shift += 7n;
    }
  };
  while (at < buf.length) {
    const key = Number(varint());
    const number = key >>> 3;
    const wire = key & 7;
    if (wire === 0) yield { number, wire, value: varint() };
    else if (wire === 2) {
      const length = Number(varint());
      if (at + length > buf.length) throw new Error('truncated length-delimited field');
      yield { number, wire, value: buf.subarray(at, at + length) };
      at += length;
    } else if (wire === 1 || wire === 5) {
      const size = wire === 1 ? 8 : 4;
      yield { number, wire, value: buf.subarray(at, at + size) };
      at += size;
    } else throw new Error(`unsupported wire type ${wire}`);
  }
}

const text = (v: bigint | Uint8Array) => Buffer.from(v as Uint8Array).toString('utf8');

function packedVarints(v: Uint8Array): bigint[] {
  const out: bigint[] = [];
  let at = 0;
  while (at < v.length) {
    let result = 0n;
    let shift = 0n;
    for (;;) {
      const b = v[at++];
      result |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) break;
      shift += 7n;
    }
    out.push(BigInt.asIntN(64, result));
  }
  return out;
}

function readTensor(buf: Uint8Array): ReadTensor {
  const t: ReadTensor = { name: '', dims: [], dataType: 0, data: new Uint8Array(0) };
  let raw: Uint8Array | undefined;
  const floats: number[] = [];
  for (const f of fields(buf)) {
    if (f.number === 1) {
      if (f.wire === 0) t.dims.push(Number(BigInt.asIntN(64, f.value as bigint)));
      else t.dims.push(...packedVarints(f.value as Uint8Array).map(Number));
    } else if (f.number === 2) t.dataType = Number(f.value);
    else if (f.number === 8) t.name = text(f.value);
    else if (f.number === 9) raw = f.value as Uint8Array;
    else if (f.number === 4 && f.wire === 2) {
      const v = f.value as Uint8Array;
      for (let i = 0; i + 4 <= v.length; i += 4) floats.push(Buffer.from(v.subarray(i, i + 4)).readFloatLE(0));
    }
  }
  const copy = raw ? raw.slice() : new Uint8Array(0);
  if (t.dataType === 1) t.data = raw ? new Float32Array(copy.buffer) : Float32Array.from(floats);
  else if (t.dataType === 7) t.data = new BigInt64Array(copy.buffer);
  else if (t.dataType === 6) t.data = new Int32Array(copy.buffer);
  else t.data = copy;
  return t;
}

function readNode(buf: Uint8Array): ReadNode {
  const n: ReadNode = { opType: '', name: '', inputs: [], outputs: [] };
  for (const f of fields(buf)) {
    if (f.number === 1) n.inputs.push(text(f.value));
    else if (f.number === 2) n.outputs.push(text(f.value));
    else if (f.number === 3) n.name = text(f.value);
    else if (f.number === 4) n.opType = text(f.value);
  }
  return n;
}

function valueInfoName(buf: Uint8Array): string {
  for (const f of fields(buf)) if (f.number === 1) return text(f.value);
  return '';
}

/** The graph of an ONNX ModelProto. */
export function readOnnxGraph(model: Uint8Array): ReadGraph {
  const graph: ReadGraph = { name: '', initializers: [], nodes: [], inputs: [], outputs: [] };
  let found = false;
  for (const f of fields(model)) {
    if (f.number !== 7 || f.wire !== 2) continue;
    found = true;
    for (const g of fields(f.value as Uint8Array)) {
      if (g.number === 1) graph.nodes.push(readNode(g.value as Uint8Array));
      else if (g.number === 2) graph.name = text(g.value);
      else if (g.number === 5) graph.initializers.push(readTensor(g.value as Uint8Array));
      else if (g.number === 11) graph.inputs.push(valueInfoName(g.value as Uint8Array));
      else if (g.number === 12) graph.outputs.push(valueInfoName(g.value as Uint8Array));
    }
  }
  if (!found) throw new Error('no graph in the model');
  return graph;
}
