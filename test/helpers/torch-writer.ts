// Writes PyTorch checkpoints for tests, without Python: a pickle writer (opcode by opcode), the
// torch._utils._rebuild_tensor_v2 record of a tensor, a zip archive laid out as torch.save writes it,
// and torchSave(), which puts the three together into a zip-format state dict (PyTorch >= 1.6).
// test/torch-checkpoint.test.ts builds its hand-made fixtures from the same pieces.
import * as zlib from 'node:zlib';


/** Emits pickle opcodes. Protocol 2 style by default; `protocol4` uses SHORT_BINUNICODE,
 * STACK_GLOBAL, MEMOIZE and a FRAME as Python's protocol 4 does. */
export class PickleWriter {
  private readonly out: number[] = [];
  private memo = 0;
  constructor(private readonly protocol4 = false) {
    this.raw(0x80, protocol4 ? 4 : 2);
  }
  raw(...bytes: number[]): this {
    for (const b of bytes) this.out.push(b);
    return this;
  }
  private u32(n: number): this {
    return this.raw(n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff);
  }
  /** Memoizes the top of the stack (index = the count so far). */
  put(): this {
    const index = this.memo++;
    if (this.protocol4) return this.raw(0x94); // MEMOIZE
    if (index < 256) return this.raw(0x71, index); // BINPUT
    return this.raw(0x72).u32(index); // LONG_BINPUT
  }
  get(index: number): this {
    return this.raw(0x68, index); // BINGET
  }
  str(s: string): this {
    const bytes = [...Buffer.from(s, 'utf8')];
    if (this.protocol4 && bytes.length < 256) this.raw(0x8c, bytes.length, ...bytes); // SHORT_BINUNICODE
    else this.raw(0x58).u32(bytes.length).raw(...bytes); // BINUNICODE
    this.put();
    return this;
  }
  int(n: number | bigint): this {
    if (typeof n === 'number' && n >= 0 && n < 256) return this.raw(0x4b, n); // BININT1
    if (typeof n === 'number' && n >= 0 && n < 65536) return this.raw(0x4d, n & 0xff, n >> 8); // BININT2
    if (typeof n === 'number' && n >= -(2 ** 31) && n < 2 ** 31) return this.raw(0x4a).u32(n); // BININT
    const b = Buffer.alloc(8);
    b.writeBigInt64LE(BigInt(n));
    return this.raw(0x8a, 8, ...b); // LONG1
  }
  float(x: number): this {
    const b = Buffer.alloc(8);
    b.writeDoubleBE(x);
    return this.raw(0x47, ...b); // BINFLOAT
  }
  global(module: string, name: string): this {
    if (this.protocol4) {
      this.str(module).str(name).raw(0x93); // STACK_GLOBAL
    } else {
      this.raw(0x63, ...Buffer.from(`${module}\n${name}\n`, 'latin1')); // GLOBAL
    }
    this.put();
    return this;
  }
  mark(): this {
    return this.raw(0x28);
  }
  tuple(): this {
    return this.raw(0x74);
  }
  emptyTuple(): this {
    return this.raw(0x29);
  }
  emptyDict(): this {
    return this.raw(0x7d);
  }
  emptyList(): this {
    return this.raw(0x5d);
  }
  setItems(): this {
    return this.raw(0x75);
  }
  appends(): this {
    return this.raw(0x65);
  }
  reduce(): this {
    return this.raw(0x52);
  }
  none(): this {
    return this.raw(0x4e);
  }
  bool(v: boolean): this {
    return this.raw(v ? 0x88 : 0x89);
  }
  persistent(): this {
    return this.raw(0x51); // BINPERSID
  }
  orderedDict(): this {
    return this.global('collections', 'OrderedDict').emptyTuple().reduce();
  }
  stop(): Uint8Array {
    this.raw(0x2e);
    if (!this.protocol4) return Uint8Array.from(this.out);
    // FRAME after PROTO, as Python writes it (its length is a hint the reader may ignore).
    const frame = Buffer.alloc(9);
    frame[0] = 0x95;
    frame.writeBigUint64LE(BigInt(this.out.length - 2), 1);
    return Uint8Array.from([...this.out.slice(0, 2), ...frame, ...this.out.slice(2)]);
  }
}

export interface TensorSpec {
  storage: string; // torch storage class, e.g. FloatStorage
  key: string;
  numel: number;
  offset: number;
  size: number[];
  stride: number[];
  /** Legacy format: the 6th persistent-id element (view metadata) or null. */
  view?: [string, number, number] | null;
  parameter?: boolean;
}

/** torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad, OrderedDict()). */
export function writeTensor(p: PickleWriter, s: TensorSpec): void {
  if (s.parameter) p.global('torch._utils', '_rebuild_parameter').mark();
  p.global('torch._utils', '_rebuild_tensor_v2').mark();
  p.mark().str('storage').global('torch', s.storage).str(s.key).str('cpu').int(s.numel);
  if (s.view !== undefined) {
    if (s.view === null) p.none();
    else p.mark().str(s.view[0]).int(s.view[1]).int(s.view[2]).tuple();
  }
  p.tuple().persistent();
  p.int(s.offset);
  p.mark();
  for (const d of s.size) p.int(d);
  p.tuple().mark();
  for (const d of s.stride) p.int(d);
  p.tuple().bool(false).orderedDict().tuple().reduce();
  if (s.parameter) p.bool(true).orderedDict().tuple().reduce();
}

export interface ZipInput {
  name: string;
  data: Uint8Array;
  deflate?: boolean;
}

/** A zip archive as PyTorch writes it: local headers (data aligned to 64 bytes with an 'FB' padding
 * extra field, as torch does), central directory, end record. Returns the bytes and where the end
 * record is. */
export function buildZip(inputs: ZipInput[]): { bytes: Uint8Array; eocd: number } {
  const parts: Buffer[] = [];
  const central: Buffer[] = [];
  let offset = 0;
  for (const input of inputs) {
    const name = Buffer.from(input.name, 'utf8');
    const body = input.deflate ? zlib.deflateRawSync(input.data) : Buffer.from(input.data);
    const crc = zlib.crc32(input.data);
    const pad = (64 - ((offset + 30 + name.length + 4) % 64)) % 64;
    const extra = Buffer.alloc(4 + pad);
    extra.writeUInt16LE(0x4246, 0);
    extra.writeUInt16LE(pad, 2);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(input.deflate ? 8 : 0, 8);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(body.length, 18);
    local.writeUInt32LE(input.data.length, 22);
    local.writeUInt16LE(name.length, 26);
    local.writeUInt16LE(extra.length, 28);
    const entry = Buffer.alloc(46);
    entry.writeUInt32LE(0x02014b50, 0);
    entry.writeUInt16LE(20, 4);
    entry.writeUInt16LE(20, 6);
    entry.writeUInt16LE(input.deflate ? 8 : 0, 10);
    entry.writeUInt32LE(crc, 16);
    entry.writeUInt32LE(body.length, 20);
    entry.writeUInt32LE(input.data.length, 24);
    entry.writeUInt16LE(name.length, 28);
    entry.writeUInt32LE(offset, 42);
    central.push(entry, name);
    parts.push(local, name, extra, body);
    offset += local.length + name.length + extra.length + body.length;
  }
  const cd = Buffer.concat(central);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(inputs.length, 8);
  end.writeUInt16LE(inputs.length, 10);
  end.writeUInt32LE(cd.length, 12);
  end.writeUInt32LE(offset, 16);
  return { bytes: new Uint8Array(Buffer.concat([...parts, cd, end])), eocd: offset + cd.length };
}

export function f32(values: number[]): Uint8Array {
  return new Uint8Array(Float32Array.from(values).buffer);
}
export function i64(values: bigint[]): Uint8Array {
  return new Uint8Array(BigInt64Array.from(values).buffer);
}
export function u16(values: number[]): Uint8Array {
  return new Uint8Array(Uint16Array.from(values).buffer);
}
export function swapped(bytes: Uint8Array, size: number): Uint8Array {
  const out = bytes.slice();
  for (let i = 0; i < out.length; i += size) out.subarray(i, i + size).reverse();
  return out;
}

// ---------------------------------------------------------------------------------------------
// Whole checkpoints

/** A tensor to save: dtype as torch names it, row-major data. */
export interface SavedTensor {
  dtype: 'float32' | 'float16' | 'float64' | 'int64';
  dims: readonly number[];
  /** float32/float64: numbers; float16: raw 16-bit patterns; int64: bigints. */
  data: ArrayLike<number> | ArrayLike<bigint>;
}

export interface TorchSaveOptions {
  /** Prepended to every key (e.g. 'module.' for a model saved from nn.DataParallel). */
  prefix?: string;
  /** Wrap the state dict: {'epoch': 1, <wrap>: state_dict}, as a training checkpoint does. */
  wrap?: string;
  /** Protocol 4 opcodes (torch.save writes protocol 2 by default; a pickle_protocol argument changes it). */
  protocol4?: boolean;
  /** DEFLATE the storages and data.pkl (torch writes STORED; other zip tools may not). */
  deflate?: boolean;
  /** The archive's top folder (torch uses the file's stem; 'archive' by default). */
  folder?: string;
}

const STORAGE_CLASS: Record<SavedTensor['dtype'], { name: string; size: number }> = {
  float32: { name: 'FloatStorage', size: 4 },
  float16: { name: 'HalfStorage', size: 2 },
  float64: { name: 'DoubleStorage', size: 8 },
  int64: { name: 'LongStorage', size: 8 },
};

function storageBytes(t: SavedTensor): Uint8Array {
  switch (t.dtype) {
    case 'float32':
      return new Uint8Array(Float32Array.from(t.data as ArrayLike<number>).buffer);
    case 'float16':
      return new Uint8Array(Uint16Array.from(t.data as ArrayLike<number>).buffer);
    case 'float64':
      return new Uint8Array(Float64Array.from(t.data as ArrayLike<number>).buffer);
    case 'int64':
      return new Uint8Array(BigInt64Array.from(t.data as ArrayLike<bigint>).buffer);
  }
}

/**
 * `torch.save(state_dict, f)` in the zip format: an OrderedDict of tensors in the given order, one
 * contiguous storage per tensor (named '0', '1', ... as torch names them), little-endian.
 */
export function torchSave(tensors: Iterable<readonly [string, SavedTensor]>, o: TorchSaveOptions = {}): Uint8Array {
  const folder = o.folder ?? 'archive';
  const p = new PickleWriter(o.protocol4);
  if (o.wrap !== undefined) p.emptyDict().put().mark().str('epoch').int(1).str(o.wrap);
  p.orderedDict().put().mark();
  const records: ZipInput[] = [];
  let index = 0;
  for (const [key, tensor] of tensors) {
    const numel = tensor.dims.reduce((a, b) => a * b, 1);
    if (tensor.data.length !== numel) throw new RangeError(`torchSave: '${key}' has ${tensor.data.length} values for dims [${tensor.dims.join(', ')}]`);
    const stride = tensor.dims.map((_, i) => tensor.dims.slice(i + 1).reduce((a, b) => a * b, 1));
    const storageKey = String(index++);
    p.str(`${o.prefix ?? ''}${key}`);
    writeTensor(p, { storage: STORAGE_CLASS[tensor.dtype].name, key: storageKey, numel, offset: 0, size: [...tensor.dims], stride });
    records.push({ name: `${folder}/data/${storageKey}`, data: storageBytes(tensor), deflate: o.deflate });
  }
  p.setItems();
  if (o.wrap !== undefined) p.setItems();
  return buildZip([
    { name: `${folder}/data.pkl`, data: p.stop(), deflate: o.deflate },
    { name: `${folder}/byteorder`, data: Buffer.from('little') },
    ...records,
    { name: `${folder}/version`, data: Buffer.from('3\n') },
    { name: `${folder}/.data/serialization_id`, data: Buffer.from('1234567890') },
  ]).bytes;
}
