/**
 * Reads PyTorch checkpoints (`torch.save` files) without Python: a small zip reader, a pickle
 * virtual machine that knows the handful of torch classes a checkpoint refers to, and the two
 * container layouts.
 *
 * 1. Zip format (PyTorch >= 1.6, the default): a zip archive whose entries share one top folder
 *    (`archive/` or the file's stem): `data.pkl` is the pickled object, every storage is a raw
 *    little-endian record `data/<key>` (its byte order is in `byteorder` when present; `big` is
 *    byte-swapped on read), plus `version`. Records are normally STORED; DEFLATED is read too.
 *    Zip64 end records and extra fields are understood. CRC-32s are checked.
 * 2. Legacy format (`_use_new_zipfile_serialization=False`, PyTorch < 1.6): five consecutive pickles
 *    (protocol 2) — magic number 0x1950a86a20f9469cfc6c, protocol version 1001, sys_info, the object,
 *    the list of storage keys — then for each key in that list's order an int64 little-endian element
 *    count followed by the storage's raw little-endian bytes.
 *
 * In the object, a tensor is `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)`
 * whose storage comes from a persistent id `('storage', torch.FloatStorage, key, location, numel[, view])`.
 * Any storage offset and any (non-negative) strides are honoured: every tensor is copied out of its
 * storage into a new contiguous, row-major typed array.
 *
 * Nothing in the file is ever executed. A global the reader does not know (say a numpy scalar kept
 * beside the weights) becomes an inert {@link PickledObject}; it is an error only where a tensor or
 * a state dict is needed, and the message names its module.class.
 *
 * Every read is bounds-checked: a truncated or corrupted file throws a FaceError with code E_MODEL
 * that says what is wrong and where.
 */
import * as zlib from 'node:zlib';
import { constants as bufferConstants } from 'node:buffer';
import { FaceError, describeValue, invalidType } from '../errors';

export type TorchDType =
  | 'float32'
  | 'float64'
  | 'float16'
  | 'bfloat16'
  | 'int64'
  | 'int32'
  | 'int16'
  | 'int8'
  | 'uint8'
  | 'bool';

/** Element storage per dtype: float16 and bfloat16 keep their raw 16-bit patterns (see toFloat32). */
export type TorchTensorData =
  | Float32Array
  | Float64Array
  | Uint16Array
  | BigInt64Array
  | Int32Array
  | Int16Array
  | Int8Array
  | Uint8Array;

export interface TorchTensor {
  /** The state-dict key (readTorchCheckpoint); '' for tensors returned by readTorchObject. */
  key: string;
  dtype: TorchDType;
  /** Shape; [] for a scalar. */
  dims: number[];
  /** The elements in row-major order (a copy of the file's bytes; never a view of the input). */
  data: TorchTensorData;
}

/**
 * An instance of a class the reader does not know, kept inert: `className` is 'module.Name',
 * `args` what it was constructed with, `state` what BUILD set (if anything).
 */
export class PickledObject {
  state: unknown = undefined;
  /** Items added by SETITEM(S) / APPEND(S) when the class is a dict or list subclass. */
  items: Map<unknown, unknown> | undefined = undefined;
  list: unknown[] | undefined = undefined;
  constructor(
    readonly className: string,
    readonly args: unknown[],
  ) {}
}

const ITEM_SIZE: Record<TorchDType, number> = {
  float32: 4,
  float64: 8,
  float16: 2,
  bfloat16: 2,
  int64: 8,
  int32: 4,
  int16: 2,
  int8: 1,
  uint8: 1,
  bool: 1,
};

const STORAGE_DTYPES: Record<string, TorchDType> = {
  FloatStorage: 'float32',
  DoubleStorage: 'float64',
  HalfStorage: 'float16',
  BFloat16Storage: 'bfloat16',
  LongStorage: 'int64',
  IntStorage: 'int32',
  ShortStorage: 'int16',
  CharStorage: 'int8',
  ByteStorage: 'uint8',
  BoolStorage: 'bool',
  UntypedStorage: 'uint8',
};

/** Entries that hold the weights inside a training checkpoint, in order of preference. */
const STATE_DICT_ENTRIES = [
  'state_dict',
  'model_state_dict',
  'net_state_dict',
  'model',
  'net',
  'network',
  'module',
  'weights',
  'params',
  'state_dict_ema',
  'model_ema',
  'ema',
];

const LEGACY_MAGIC = 0x1950a86a20f9469cfc6cn;
const LEGACY_PROTOCOL_VERSION = 1001;
const MAX_BYTES = Math.min(bufferConstants.MAX_LENGTH, 2 ** 32);
const HOST_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * Reads a checkpoint and returns its state dict: tensor name → tensor, in the file's order.
 *
 * The state dict is the root object when that is a dict of tensors; otherwise the first of the entries
 * 'state_dict', 'model_state_dict', 'net_state_dict', 'model', 'net', 'network', 'module', 'weights',
 * 'params', 'state_dict_ema', 'model_ema', 'ema' that is a dict (searched again inside it, up to three
 * levels). The other entries of a training checkpoint (epoch, optimizer, ...) are ignored, and their
 * tensors are not copied. When every key starts with 'module.' (a model saved from
 * nn.DataParallel / DistributedDataParallel) that prefix is removed.
 *
 * @param bytes the file's contents
 * @param what a name for messages, e.g. the file name
 * @throws FaceError E_MODEL when the file is not a readable checkpoint or holds no state dict
 */
export function readTorchCheckpoint(bytes: Uint8Array, what?: string): Map<string, TorchTensor> {
  const ctx = new Context(what);
  const root = load(bytes, ctx);
  const { dict, path } = findStateDict(root, ctx, '', 0);
  const keys = [...dict.keys()] as string[];
  const strip = keys.length > 0 && keys.every((k) => k.startsWith('module.'));
  const result = new Map<string, TorchTensor>();
  for (const [key, value] of dict as Map<string, Tensor>) {
    const name = strip ? key.slice('module.'.length) : key;
    const tensor = value.materialize(ctx, `'${path}${key}'`);
    result.set(name, { key: name, dtype: tensor.dtype, dims: tensor.dims.slice(), data: tensor.data });
  }
  return result;
}

/**
 * Reads a checkpoint's whole pickled object: dicts (and OrderedDicts) as Map, lists and tuples as
 * arrays, sets as Set, str as string, bytes as Uint8Array, int as number (bigint beyond 2^53), float as
 * number, None as null, tensors as TorchTensor (key ''), instances of unknown classes as PickledObject,
 * and a bare class or function reference (say torch.float32) as an object whose `name` is 'module.Name'.
 *
 * @throws FaceError E_MODEL when the file is not a readable checkpoint
 */
export function readTorchObject(bytes: Uint8Array, what?: string): unknown {
  const ctx = new Context(what);
  const root = load(bytes, ctx);
  for (const tensor of ctx.tensors) tensor.materialize(ctx);
  return root;
}

/**
 * The tensor's values as float32. A float32 tensor's own array is returned (not a copy); other dtypes
 * are converted into a new array (float16/bfloat16 decoded, int64 through Number).
 */
export function toFloat32(t: TorchTensor): Float32Array {
  const data = t.data;
  switch (t.dtype) {
    case 'float32':
      return data as Float32Array;
    case 'float16': {
      const src = data as Uint16Array;
      const out = new Float32Array(src.length);
      for (let i = 0; i < src.length; i++) out[i] = halfToFloat(src[i]);
      return out;
    }
    case 'bfloat16': {
      const src = data as Uint16Array;
      const bits = new Uint32Array(src.length);
      for (let i = 0; i < src.length; i++) bits[i] = src[i] << 16;
      return new Float32Array(bits.buffer);
    }
    case 'int64': {
      const src = data as BigInt64Array;
      const out = new Float32Array(src.length);
      for (let i = 0; i < src.length; i++) out[i] = Number(src[i]);
      return out;
    }
    default:
      return Float32Array.from(data as Exclude<TorchTensorData, BigInt64Array>);
  }
}

/** An IEEE 754 binary16 bit pattern as a number (exact). */
export function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exponent = (h >> 10) & 0x1f;
  const fraction = h & 0x3ff;
  if (exponent === 0) return sign * fraction * 2 ** -24;
  if (exponent === 31) return fraction ? NaN : sign * Infinity;
  return sign * (1 + fraction / 1024) * 2 ** (exponent - 15);
}

// ---------------------------------------------------------------------------------------------
// Errors and shared state

class Context {
  readonly label: string;
  /** Every tensor the pickle built, in order. */
  readonly tensors: Tensor[] = [];
  constructor(readonly what: string | undefined) {
    this.label = what ? ` (${what})` : '';
  }
  malformed(message: string): FaceError {
    return new FaceError('E_MODEL', `Malformed PyTorch checkpoint${this.label}: ${message}`);
  }
  unsupported(message: string): FaceError {
    return new FaceError('E_MODEL', `Unsupported PyTorch checkpoint${this.label}: ${message}`);
  }
}

/** A storage: `numel` elements of `dtype`; its bytes arrive from the file once located. */
class Storage {
  bytes: Uint8Array | undefined = undefined;
  littleEndian = true;
  constructor(
    readonly key: string,
    readonly dtype: TorchDType,
    readonly numel: number,
    /** For a legacy storage view: the root storage and the view's first element in it. */
    readonly root: Storage | undefined = undefined,
    readonly rootOffset = 0,
  ) {}

  /** The storage's bytes, or an error when the file never supplied them. */
  resolve(ctx: Context): { bytes: Uint8Array; littleEndian: boolean } {
    if (this.root) {
      const root = this.root.resolve(ctx);
      const start = this.rootOffset * ITEM_SIZE[this.dtype];
      return { bytes: root.bytes.subarray(start, start + this.numel * ITEM_SIZE[this.dtype]), littleEndian: root.littleEndian };
    }
    if (!this.bytes) throw ctx.malformed(`storage '${this.key}' is used by a tensor but the file holds no data for it`);
    return { bytes: this.bytes, littleEndian: this.littleEndian };
  }
}

class Tensor implements TorchTensor {
  key = '';
  data: TorchTensorData;
  private done = false;
  constructor(
    readonly dtype: TorchDType,
    readonly dims: number[],
    private readonly storage: Storage,
    private readonly offset: number,
    private readonly stride: number[],
  ) {
    this.data = typedArray(dtype, new ArrayBuffer(0));
  }

  /** Copies the elements out of the storage (once). */
  materialize(ctx: Context, name?: string): Tensor {
    if (this.done) return this;
    const { dims, stride, offset, storage, dtype } = this;
    const itemSize = ITEM_SIZE[dtype];
    const label = `${name ? `tensor ${name}` : 'a tensor'} (shape [${dims.join(', ')}], stride [${stride.join(', ')}], storage offset ${offset})`;
    let numel = 1;
    for (const d of dims) numel *= d;
    if (numel * itemSize > MAX_BYTES) throw ctx.unsupported(`${label} is too large (${numel} elements)`);
    if (numel > 0) {
      let last = offset;
      for (let i = 0; i < dims.length; i++) last += (dims[i] - 1) * stride[i];
      if (last >= storage.numel) {
        throw ctx.malformed(`${label} reaches element ${last} of storage '${storage.key}', which has ${storage.numel} elements`);
      }
    }
    const out = new Uint8Array(numel * itemSize);
    if (numel > 0) {
      const { bytes, littleEndian } = storage.resolve(ctx);
      if (isContiguous(dims, stride)) {
        out.set(bytes.subarray(offset * itemSize, (offset + numel) * itemSize));
      } else {
        copyStrided(bytes, out, itemSize, dims, stride, offset);
      }
      if (littleEndian !== HOST_LITTLE_ENDIAN && itemSize > 1) swapBytes(out, itemSize);
    }
    this.data = typedArray(dtype, out.buffer);
    this.done = true;
    return this;
  }
}

function isContiguous(dims: number[], stride: number[]): boolean {
  let expected = 1;
  for (let i = dims.length - 1; i >= 0; i--) {
    if (dims[i] !== 1 && stride[i] !== expected) return false;
    expected *= dims[i];
  }
  return true;
}

/** Row-major walk over the index space, copying one element at a time from offset + Σ index·stride. */
function copyStrided(src: Uint8Array, out: Uint8Array, itemSize: number, dims: number[], stride: number[], offset: number): void {
  const rank = dims.length;
  const index = new Array<number>(rank).fill(0);
  let at = offset;
  for (let o = 0; o < out.length; o += itemSize) {
    const s = at * itemSize;
    for (let b = 0; b < itemSize; b++) out[o + b] = src[s + b];
    for (let d = rank - 1; d >= 0; d--) {
      index[d]++;
      at += stride[d];
      if (index[d] < dims[d]) break;
      at -= dims[d] * stride[d];
      index[d] = 0;
    }
  }
}

function swapBytes(bytes: Uint8Array, itemSize: number): void {
  for (let i = 0; i < bytes.length; i += itemSize) {
    for (let a = i, b = i + itemSize - 1; a < b; a++, b--) {
      const t = bytes[a];
      bytes[a] = bytes[b];
      bytes[b] = t;
    }
  }
}

function typedArray(dtype: TorchDType, buffer: ArrayBuffer): TorchTensorData {
  switch (dtype) {
    case 'float32':
      return new Float32Array(buffer);
    case 'float64':
      return new Float64Array(buffer);
    case 'float16':
    case 'bfloat16':
      return new Uint16Array(buffer);
    case 'int64':
      return new BigInt64Array(buffer);
    case 'int32':
      return new Int32Array(buffer);
    case 'int16':
      return new Int16Array(buffer);
    case 'int8':
      return new Int8Array(buffer);
    case 'uint8':
    case 'bool':
      return new Uint8Array(buffer);
  }
}

// ---------------------------------------------------------------------------------------------
// Container formats

function load(bytes: Uint8Array, ctx: Context): unknown {
  if (!(bytes instanceof Uint8Array)) throw invalidType('a Uint8Array or Buffer', `the bytes of ${ctx.what ?? 'a PyTorch checkpoint'}`, bytes);
  const expected = `Expected a PyTorch checkpoint (a zip archive, or a legacy pickle stream starting with 0x80) for ${ctx.what ?? 'the checkpoint bytes'}`;
  if (bytes.length === 0) throw new FaceError('E_MODEL', `${expected} but received an empty buffer`);
  if (bytes.length >= 4 && bytes[0] === 0x50 && bytes[1] === 0x4b && (bytes[2] === 3 || bytes[2] === 5)) return loadZip(bytes, ctx);
  if (bytes[0] === 0x80) return loadLegacy(bytes, ctx);
  if (bytes.length >= 262 && latin1(bytes.subarray(257, 262)) === 'ustar') {
    throw ctx.unsupported('the tar-based format of PyTorch < 0.1.10 is not supported; re-save the model with a current PyTorch');
  }
  const head = Buffer.from(bytes.subarray(0, 8)).toString('hex').replace(/(..)(?!$)/g, '$1 ');
  throw new FaceError('E_MODEL', `${expected} but received ${bytes.length} bytes starting with ${head}`);
}

function loadLegacy(bytes: Uint8Array, ctx: Context): unknown {
  const storages = new Map<string, Storage>();
  const noPersistent = (): never => {
    throw ctx.malformed('a persistent id outside the object pickle');
  };
  const magic = unpickle(bytes, 0, 'the magic-number pickle', 'the file', ctx, noPersistent);
  if (typeof magic.value !== 'bigint' || magic.value !== LEGACY_MAGIC) {
    throw ctx.malformed(`Expected the magic number 0x1950a86a20f9469cfc6c for the first pickle but received ${describeValue(magic.value)}`);
  }
  const version = unpickle(bytes, magic.end, 'the protocol-version pickle', 'the file', ctx, noPersistent);
  if (version.value !== LEGACY_PROTOCOL_VERSION) {
    throw ctx.unsupported(`Expected protocol version ${LEGACY_PROTOCOL_VERSION} but received ${describeValue(version.value)}`);
  }
  const sysInfo = unpickle(bytes, version.end, 'the sys_info pickle', 'the file', ctx, noPersistent);
  if (!(sysInfo.value instanceof Map)) throw ctx.malformed(`Expected a dict for sys_info but received ${describeValue(sysInfo.value)}`);
  if (sysInfo.value.get('little_endian') === false) throw ctx.unsupported('the file was written on a big-endian machine');

  const persistentLoad = (pid: unknown): unknown => {
    if (!Array.isArray(pid) || pid.length < 1) throw ctx.malformed(`Expected a tuple for a persistent id but received ${describeValue(pid)}`);
    if (pid[0] === 'module') return new PickledObject('<source of a pickled module>', pid.slice(1));
    if (pid[0] !== 'storage' || pid.length !== 6) {
      throw ctx.malformed(`Expected a persistent id ('storage', type, key, location, numel, view) but received ${describePid(pid)}`);
    }
    const [, type, key, , numel, view] = pid;
    const dtype = storageDType(type, ctx);
    const storageKey = keyString(key, ctx);
    const count = checkCount(numel, `the element count of storage '${storageKey}'`, ctx);
    let root = storages.get(storageKey);
    if (!root) {
      root = new Storage(storageKey, dtype, count);
      storages.set(storageKey, root);
    } else if (root.dtype !== dtype || root.numel !== count) {
      throw ctx.malformed(`storage '${storageKey}' is declared twice, as ${root.numel} × ${root.dtype} and as ${count} × ${dtype}`);
    }
    if (view === null) return root;
    if (!Array.isArray(view) || view.length !== 3) throw ctx.malformed(`Expected null or (key, offset, size) for the view of storage '${storageKey}' but received ${describeValue(view)}`);
    const viewOffset = checkCount(view[1], `the offset of a view of storage '${storageKey}'`, ctx);
    const viewSize = checkCount(view[2], `the size of a view of storage '${storageKey}'`, ctx);
    if (viewOffset + viewSize > count) {
      throw ctx.malformed(`a view of ${viewSize} elements at offset ${viewOffset} of storage '${storageKey}' exceeds its ${count} elements`);
    }
    return new Storage(`${storageKey}[${viewOffset}:${viewOffset + viewSize}]`, dtype, viewSize, root, viewOffset);
  };
  const object = unpickle(bytes, sysInfo.end, 'the object pickle', 'the file', ctx, persistentLoad);
  const keyList = unpickle(bytes, object.end, 'the storage-key pickle', 'the file', ctx, noPersistent);
  if (!Array.isArray(keyList.value)) throw ctx.malformed(`Expected a list of storage keys but received ${describeValue(keyList.value)}`);

  let at = keyList.end;
  for (const key of keyList.value) {
    const storageKey = keyString(key, ctx);
    const storage = storages.get(storageKey);
    if (!storage) throw ctx.malformed(`the storage-key list names '${storageKey}', which no tensor uses`);
    if (storage.bytes) throw ctx.malformed(`the storage-key list names '${storageKey}' twice`);
    if (bytes.length - at < 8) {
      throw ctx.malformed(`the element count of storage '${storageKey}' needs 8 bytes at offset ${at} but the file ends at ${bytes.length}`);
    }
    const count = new DataView(bytes.buffer, bytes.byteOffset + at, 8).getBigInt64(0, true);
    if (count !== BigInt(storage.numel)) {
      throw ctx.malformed(`storage '${storageKey}' at offset ${at} says it has ${count} elements but the object declares ${storage.numel}`);
    }
    at += 8;
    const size = storage.numel * ITEM_SIZE[storage.dtype];
    if (bytes.length - at < size) {
      throw ctx.malformed(`storage '${storageKey}' needs ${size} bytes at offset ${at} but the file ends at ${bytes.length}`);
    }
    storage.bytes = bytes.subarray(at, at + size);
    at += size;
  }
  return object.value;
}

function loadZip(bytes: Uint8Array, ctx: Context): unknown {
  const zip = new ZipReader(bytes, ctx);
  let prefix: string | undefined;
  for (const name of zip.entries.keys()) {
    const parts = name.split('/');
    if (parts.length === 2 && parts[1] === 'data.pkl') {
      prefix = parts[0];
      break;
    }
  }
  if (prefix === undefined) {
    const names = [...zip.entries.keys()];
    if (names.some((n) => n.endsWith('/constants.pkl') || n.includes('/code/'))) {
      throw ctx.unsupported('this is a TorchScript archive (torch.jit.save); save the model with torch.save(model.state_dict(), ...)');
    }
    throw ctx.malformed(`the zip archive has no '<folder>/data.pkl' record (records: ${names.slice(0, 5).join(', ')}${names.length > 5 ? ', ...' : ''})`);
  }
  let littleEndian = true;
  if (zip.entries.has(`${prefix}/byteorder`)) {
    const order = latin1(zip.read(`${prefix}/byteorder`)).trim();
    if (order !== 'little' && order !== 'big') throw ctx.malformed(`Expected 'little' or 'big' for ${prefix}/byteorder but received ${JSON.stringify(order.slice(0, 20))}`);
    littleEndian = order === 'little';
  }
  if (zip.entries.has(`${prefix}/version`)) {
    const version = latin1(zip.read(`${prefix}/version`)).trim();
    if (!/^\d{1,4}$/.test(version)) throw ctx.malformed(`Expected a number for ${prefix}/version but received ${JSON.stringify(version.slice(0, 20))}`);
  }
  const storages = new Map<string, Storage>();
  const persistentLoad = (pid: unknown): unknown => {
    if (!Array.isArray(pid) || pid.length !== 5 || pid[0] !== 'storage') {
      throw ctx.malformed(`Expected a persistent id ('storage', type, key, location, numel) but received ${describePid(pid)}`);
    }
    const [, type, key, , numel] = pid;
    const dtype = storageDType(type, ctx);
    const storageKey = keyString(key, ctx);
    const count = checkCount(numel, `the element count of storage '${storageKey}'`, ctx);
    const known = storages.get(storageKey);
    if (known) {
      if (known.dtype !== dtype || known.numel !== count) {
        throw ctx.malformed(`storage '${storageKey}' is declared twice, as ${known.numel} × ${known.dtype} and as ${count} × ${dtype}`);
      }
      return known;
    }
    const name = `${prefix}/data/${storageKey}`;
    if (!zip.entries.has(name)) throw ctx.malformed(`storage '${storageKey}' has no record '${name}' in the zip archive`);
    const data = zip.read(name);
    const size = count * ITEM_SIZE[dtype];
    if (data.length !== size) {
      throw ctx.malformed(`record '${name}' holds ${data.length} bytes but storage '${storageKey}' needs ${size} (${count} × ${dtype})`);
    }
    const storage = new Storage(storageKey, dtype, count);
    storage.bytes = data;
    storage.littleEndian = littleEndian;
    storages.set(storageKey, storage);
    return storage;
  };
  const pkl = zip.read(`${prefix}/data.pkl`);
  const result = unpickle(pkl, 0, `${prefix}/data.pkl`, `record ${prefix}/data.pkl`, ctx, persistentLoad);
  return result.value;
}

function describePid(pid: unknown): string {
  if (Array.isArray(pid)) return `a tuple of ${pid.length} starting with ${describeValue(pid[0])}`;
  return describeValue(pid);
}

function storageDType(type: unknown, ctx: Context): TorchDType {
  if (type instanceof StorageType) return type.dtype;
  if (type instanceof UnknownGlobal) throw ctx.unsupported(`storage type ${type.name} is not supported`);
  throw ctx.malformed(`Expected a storage type (torch.FloatStorage, ...) in a persistent id but received ${describeValue(type)}`);
}

function keyString(key: unknown, ctx: Context): string {
  if (typeof key === 'string') return key;
  if (typeof key === 'number' && Number.isInteger(key)) return String(key);
  throw ctx.malformed(`Expected a string for a storage key but received ${describeValue(key)}`);
}

function checkCount(value: unknown, what: string, ctx: Context): number {
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) return value;
  throw ctx.malformed(`Expected a non-negative integer for ${what} but received ${describeValue(value)}`);
}

// ---------------------------------------------------------------------------------------------
// Zip

interface ZipEntry {
  name: string;
  method: number;
  flags: number;
  crc: number;
  compressedSize: number;
  size: number;
  localOffset: number;
}

class ZipReader {
  readonly entries = new Map<string, ZipEntry>();
  private readonly view: DataView;

  constructor(
    private readonly bytes: Uint8Array,
    private readonly ctx: Context,
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const length = bytes.length;
    let eocd = -1;
    for (let at = length - 22; at >= Math.max(0, length - 22 - 0xffff); at--) {
      if (this.view.getUint32(at, true) === 0x06054b50) {
        eocd = at;
        break;
      }
    }
    if (eocd < 0) throw ctx.malformed(`no zip end-of-central-directory record in the last ${Math.min(length, 22 + 0xffff)} bytes (the file is truncated or not a zip archive)`);
    let count = this.view.getUint16(eocd + 10, true);
    let cdSize = this.view.getUint32(eocd + 12, true);
    let cdOffset = this.view.getUint32(eocd + 16, true);
    if (count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) {
      // Zip64: the locator sits just before the classic record and points at the zip64 record.
      const locator = eocd - 20;
      if (locator < 0 || this.view.getUint32(locator, true) !== 0x07064b50) throw ctx.malformed('the zip64 end-of-central-directory locator is missing');
      const record = this.u64(locator + 8, 'the zip64 end-of-central-directory offset');
      if (record + 56 > locator || this.view.getUint32(record, true) !== 0x06064b50) {
        throw ctx.malformed(`no zip64 end-of-central-directory record at offset ${record}`);
      }
      count = this.u64(record + 32, 'the zip64 entry count');
      cdSize = this.u64(record + 40, 'the zip64 central-directory size');
      cdOffset = this.u64(record + 48, 'the zip64 central-directory offset');
    }
    if (cdOffset + cdSize > eocd) {
      throw ctx.malformed(`the zip central directory (${cdSize} bytes at offset ${cdOffset}) overlaps its end record at offset ${eocd}`);
    }
    let at = cdOffset;
    const end = cdOffset + cdSize;
    for (let i = 0; i < count; i++) {
      if (end - at < 46 || this.view.getUint32(at, true) !== 0x02014b50) {
        throw ctx.malformed(`zip central-directory entry ${i} of ${count} at offset ${at} is missing or damaged (the central-directory offset or size is wrong)`);
      }
      const flags = this.view.getUint16(at + 8, true);
      const method = this.view.getUint16(at + 10, true);
      const crc = this.view.getUint32(at + 16, true);
      let compressedSize = this.view.getUint32(at + 20, true);
      let size = this.view.getUint32(at + 24, true);
      const nameLength = this.view.getUint16(at + 28, true);
      const extraLength = this.view.getUint16(at + 30, true);
      const commentLength = this.view.getUint16(at + 32, true);
      let localOffset = this.view.getUint32(at + 42, true);
      const next = at + 46 + nameLength + extraLength + commentLength;
      if (next > end) throw ctx.malformed(`zip central-directory entry ${i} at offset ${at} runs past the central directory`);
      const name = utf8(bytes.subarray(at + 46, at + 46 + nameLength), `the name of zip entry ${i}`, ctx);
      // Zip64 extended information: the 64-bit values of the fields that read 0xffffffff, in order.
      let extra = at + 46 + nameLength;
      const extraEnd = extra + extraLength;
      while (extraEnd - extra >= 4) {
        const id = this.view.getUint16(extra, true);
        const length = this.view.getUint16(extra + 2, true);
        if (extra + 4 + length > extraEnd) break;
        if (id === 0x0001) {
          let field = extra + 4;
          const take = (what: string): number => {
            if (field + 8 > extra + 4 + length) throw ctx.malformed(`the zip64 extra field of '${name}' lacks ${what}`);
            const value = this.u64(field, `${what} of '${name}'`);
            field += 8;
            return value;
          };
          if (size === 0xffffffff) size = take('the size');
          if (compressedSize === 0xffffffff) compressedSize = take('the compressed size');
          if (localOffset === 0xffffffff) localOffset = take('the local-header offset');
        }
        extra += 4 + length;
      }
      if (this.entries.has(name)) throw ctx.malformed(`the zip archive holds '${name}' twice`);
      this.entries.set(name, { name, method, flags, crc, compressedSize, size, localOffset });
      at = next;
    }
  }

  private u64(at: number, what: string): number {
    const value = this.view.getBigUint64(at, true);
    if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw this.ctx.malformed(`${what} (${value}) is out of range`);
    return Number(value);
  }

  /** The record's uncompressed bytes (a view of the input when STORED). */
  read(name: string): Uint8Array {
    const ctx = this.ctx;
    const entry = this.entries.get(name);
    if (!entry) throw ctx.malformed(`the zip archive has no record '${name}'`);
    const length = this.bytes.length;
    const local = entry.localOffset;
    if (local + 30 > length || this.view.getUint32(local, true) !== 0x04034b50) {
      throw ctx.malformed(`the local header of '${name}' is not at offset ${local} (file of ${length} bytes)`);
    }
    if (entry.flags & 1) throw ctx.unsupported(`record '${name}' is encrypted`);
    const nameLength = this.view.getUint16(local + 26, true);
    const extraLength = this.view.getUint16(local + 28, true);
    const start = local + 30 + nameLength + extraLength;
    if (start > length || latin1(this.bytes.subarray(local + 30, local + 30 + nameLength)) !== latin1(Buffer.from(name, 'utf8'))) {
      throw ctx.malformed(`the local header at offset ${local} does not belong to '${name}'`);
    }
    if (length - start < entry.compressedSize) {
      throw ctx.malformed(`record '${name}' needs ${entry.compressedSize} bytes at offset ${start} but the file ends at ${length}`);
    }
    const raw = this.bytes.subarray(start, start + entry.compressedSize);
    let data: Uint8Array;
    if (entry.method === 0) {
      if (entry.compressedSize !== entry.size) throw ctx.malformed(`stored record '${name}' has compressed size ${entry.compressedSize} but size ${entry.size}`);
      data = raw;
    } else if (entry.method === 8) {
      if (entry.size > MAX_BYTES) throw ctx.unsupported(`record '${name}' is too large (${entry.size} bytes)`);
      try {
        data = zlib.inflateRawSync(raw, { maxOutputLength: Math.max(1, entry.size) });
      } catch (error) {
        throw ctx.malformed(`record '${name}' does not inflate to its ${entry.size} bytes (${(error as Error).message})`);
      }
      if (data.length !== entry.size) throw ctx.malformed(`record '${name}' inflates to ${data.length} bytes but the directory says ${entry.size}`);
    } else {
      throw ctx.unsupported(`record '${name}' uses zip compression method ${entry.method} (only STORED and DEFLATED are read)`);
    }
    const crc = zlib.crc32(data) >>> 0;
    if (crc !== entry.crc) {
      throw ctx.malformed(`record '${name}' is corrupted (CRC-32 ${hex32(crc)}, the directory says ${hex32(entry.crc)})`);
    }
    return data;
  }
}

function hex32(n: number): string {
  return `0x${n.toString(16).padStart(8, '0')}`;
}

function latin1(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1');
}

const utf8Decoder = new TextDecoder('utf-8', { fatal: true });

function utf8(bytes: Uint8Array, what: string, ctx: Context): string {
  try {
    return utf8Decoder.decode(bytes);
  } catch {
    throw ctx.malformed(`${what} is not valid UTF-8`);
  }
}

// ---------------------------------------------------------------------------------------------
// Pickle virtual machine

/** A class or function the reader implements. */
class Callable {
  constructor(
    readonly name: string,
    readonly call: (args: unknown[], ctx: Context) => unknown,
  ) {}
}

/** torch.FloatStorage and friends: only ever used as a marker in persistent ids. */
class StorageType {
  constructor(
    readonly name: string,
    readonly dtype: TorchDType,
  ) {}
}

/** A global the reader does not know; calling it makes a PickledObject. */
class UnknownGlobal {
  constructor(readonly name: string) {}
}

/** torch.float32 and friends. */
class DTypeMarker {
  constructor(readonly name: string) {}
}

function rebuildTensor(name: string) {
  return new Callable(name, (args, ctx) => {
    if (args.length < 4) throw ctx.malformed(`Expected at least 4 arguments for ${name} but received ${args.length}`);
    const [storage, offset, size, stride] = args;
    if (!(storage instanceof Storage)) throw ctx.malformed(`Expected a storage for the first argument of ${name} but received ${describeValue(storage)}`);
    const start = checkCount(offset, `the storage offset of a tensor`, ctx);
    const dims = intTuple(size, `the size of a tensor`, ctx);
    const strides = intTuple(stride, `the stride of a tensor`, ctx);
    if (dims.length !== strides.length) {
      throw ctx.malformed(`a tensor has size [${dims.join(', ')}] but stride [${strides.join(', ')}] (different lengths)`);
    }
    const tensor = new Tensor(storage.dtype, dims, storage, start, strides);
    ctx.tensors.push(tensor);
    return tensor;
  });
}

function intTuple(value: unknown, what: string, ctx: Context): number[] {
  if (!Array.isArray(value)) throw ctx.malformed(`Expected a tuple of integers for ${what} but received ${describeValue(value)}`);
  return value.map((v) => checkCount(v, what, ctx));
}

function makeDict(args: unknown[], ctx: Context): Map<unknown, unknown> {
  const dict = new Map<unknown, unknown>();
  const items = args[0];
  if (items === undefined || items === null) return dict;
  if (items instanceof Map) return new Map(items);
  if (!Array.isArray(items)) throw ctx.malformed(`Expected a list of pairs for an OrderedDict but received ${describeValue(items)}`);
  for (const pair of items) {
    if (!Array.isArray(pair) || pair.length !== 2) throw ctx.malformed(`Expected a (key, value) pair in an OrderedDict but received ${describeValue(pair)}`);
    dict.set(pair[0], pair[1]);
  }
  return dict;
}

const TORCH_DTYPES = [
  'float32', 'float', 'float64', 'double', 'float16', 'half', 'bfloat16', 'int64', 'long', 'int32', 'int',
  'int16', 'short', 'int8', 'uint8', 'bool', 'complex64', 'complex128',
];

const GLOBALS = new Map<string, unknown>();
{
  const callables: Callable[] = [
    new Callable('collections.OrderedDict', makeDict),
    new Callable('builtins.dict', makeDict),
    new Callable('builtins.set', (args) => new Set(Array.isArray(args[0]) ? args[0] : [])),
    new Callable('builtins.frozenset', (args) => new Set(Array.isArray(args[0]) ? args[0] : [])),
    new Callable('builtins.list', (args) => (Array.isArray(args[0]) ? [...args[0]] : [])),
    new Callable('builtins.tuple', (args) => (Array.isArray(args[0]) ? [...args[0]] : [])),
    new Callable('builtins.bytearray', (args, ctx) => {
      if (args.length === 0) return new Uint8Array(0);
      if (args[0] instanceof Uint8Array) return args[0].slice();
      if (typeof args[0] === 'string' && args[1] === 'latin1') return new Uint8Array(Buffer.from(args[0], 'latin1'));
      throw ctx.malformed(`Expected bytes for bytearray() but received ${describeValue(args[0])}`);
    }),
    // Protocol 2 pickles Python 3 bytes as _codecs.encode(text, 'latin1').
    new Callable('_codecs.encode', (args, ctx) => {
      const [text, encoding] = args;
      if (typeof text !== 'string') throw ctx.malformed(`Expected a string for _codecs.encode but received ${describeValue(text)}`);
      if (encoding === 'latin1' || encoding === 'latin-1' || encoding === 'iso-8859-1') return new Uint8Array(Buffer.from(text, 'latin1'));
      if (encoding === 'utf-8' || encoding === 'utf8' || encoding === undefined) return new Uint8Array(Buffer.from(text, 'utf8'));
      throw ctx.unsupported(`_codecs.encode with encoding ${describeValue(encoding)}`);
    }),
    rebuildTensor('torch._utils._rebuild_tensor_v2'),
    rebuildTensor('torch._utils._rebuild_tensor'),
    new Callable('torch._utils._rebuild_parameter', (args) => args[0]),
    new Callable('torch._utils._rebuild_parameter_with_state', (args) => args[0]),
    new Callable('torch._tensor._rebuild_from_type_v2', (args, ctx) => {
      const [fn, , fnArgs] = args;
      if (!(fn instanceof Callable) || !Array.isArray(fnArgs)) {
        throw ctx.unsupported(`_rebuild_from_type_v2 of ${fn instanceof UnknownGlobal ? fn.name : describeValue(fn)}`);
      }
      return fn.call(fnArgs, ctx);
    }),
    new Callable('torch.Size', (args) => (Array.isArray(args[0]) ? [...args[0]] : [])),
    new Callable('torch.device', (args) => (args.length > 1 && args[1] !== null ? `${String(args[0])}:${String(args[1])}` : String(args[0]))),
    new Callable('torch.serialization._get_layout', (args) => String(args[0])),
  ];
  for (const c of callables) GLOBALS.set(c.name, c);
  for (const [name, dtype] of Object.entries(STORAGE_DTYPES)) {
    GLOBALS.set(`torch.${name}`, new StorageType(`torch.${name}`, dtype));
    GLOBALS.set(`torch.cuda.${name}`, new StorageType(`torch.cuda.${name}`, dtype));
  }
  for (const name of TORCH_DTYPES) GLOBALS.set(`torch.${name}`, new DTypeMarker(`torch.${name}`));
}

function resolveGlobal(module: string, name: string): unknown {
  const mod = module === '__builtin__' ? 'builtins' : module;
  const full = `${mod}.${name}`;
  return GLOBALS.get(full) ?? new UnknownGlobal(full);
}

const OPCODE_NAMES: Record<number, string> = {
  0x80: 'PROTO', 0x95: 'FRAME', 0x2e: 'STOP', 0x28: 'MARK', 0x30: 'POP', 0x31: 'POP_MARK', 0x32: 'DUP',
  0x4e: 'NONE', 0x88: 'NEWTRUE', 0x89: 'NEWFALSE', 0x4a: 'BININT', 0x4b: 'BININT1', 0x4d: 'BININT2',
  0x8a: 'LONG1', 0x8b: 'LONG4', 0x49: 'INT', 0x4c: 'LONG', 0x46: 'FLOAT', 0x47: 'BINFLOAT',
  0x58: 'BINUNICODE', 0x8c: 'SHORT_BINUNICODE', 0x8d: 'BINUNICODE8', 0x54: 'BINSTRING', 0x55: 'SHORT_BINSTRING',
  0x42: 'BINBYTES', 0x43: 'SHORT_BINBYTES', 0x8e: 'BINBYTES8', 0x96: 'BYTEARRAY8',
  0x7d: 'EMPTY_DICT', 0x5d: 'EMPTY_LIST', 0x29: 'EMPTY_TUPLE', 0x8f: 'EMPTY_SET', 0x90: 'ADDITEMS',
  0x91: 'FROZENSET', 0x64: 'DICT', 0x6c: 'LIST', 0x74: 'TUPLE', 0x85: 'TUPLE1', 0x86: 'TUPLE2', 0x87: 'TUPLE3',
  0x61: 'APPEND', 0x65: 'APPENDS', 0x73: 'SETITEM', 0x75: 'SETITEMS', 0x63: 'GLOBAL', 0x93: 'STACK_GLOBAL',
  0x52: 'REDUCE', 0x81: 'NEWOBJ', 0x92: 'NEWOBJ_EX', 0x62: 'BUILD', 0x70: 'PUT', 0x71: 'BINPUT',
  0x72: 'LONG_BINPUT', 0x94: 'MEMOIZE', 0x67: 'GET', 0x68: 'BINGET', 0x6a: 'LONG_BINGET', 0x50: 'PERSID',
  0x51: 'BINPERSID',
};

/**
 * Runs one pickle from `start` to its STOP. `source` names the pickle and `container` what holds it
 * (for messages); `persistentLoad` resolves persistent ids.
 */
function unpickle(
  buf: Uint8Array,
  start: number,
  source: string,
  container: string,
  ctx: Context,
  persistentLoad: (pid: unknown) => unknown,
): { value: unknown; end: number } {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const end = buf.length;
  let stack: unknown[] = [];
  const marks: unknown[][] = [];
  const memo = new Map<number, unknown>();
  let pos = start;
  let opAt = start;
  let op = 0;

  const opcode = () => `opcode ${OPCODE_NAMES[op] ?? `0x${op.toString(16)}`} at byte ${opAt}`;
  const where = () => `${opcode()} of ${source}`;
  const cutShort = (needs: string) => ctx.malformed(`${source} is cut short: ${opcode()} needs ${needs} but ${container} ends at byte ${end}`);
  const need = (n: number) => {
    if (n > end - pos) throw cutShort(`${n} more bytes`);
  };
  const bad = (message: string) => ctx.malformed(`${where()}: ${message}`);
  const pop = (): unknown => {
    if (stack.length === 0) throw bad('the stack is empty');
    return stack.pop();
  };
  const top = (): unknown => {
    if (stack.length === 0) throw bad('the stack is empty');
    return stack[stack.length - 1];
  };
  const popMark = (): unknown[] => {
    const items = stack;
    const previous = marks.pop();
    if (!previous) throw bad('no MARK to pop to');
    stack = previous;
    return items;
  };
  const readBytes = (n: number): Uint8Array => {
    need(n);
    const bytes = buf.subarray(pos, pos + n);
    pos += n;
    return bytes;
  };
  const u32 = (): number => {
    need(4);
    const v = view.getUint32(pos, true);
    pos += 4;
    return v;
  };
  const u64 = (): number => {
    need(8);
    const v = view.getBigUint64(pos, true);
    pos += 8;
    if (v > BigInt(end)) throw bad(`a length of ${v} bytes exceeds ${container}`);
    return Number(v);
  };
  const line = (): string => {
    let i = pos;
    while (i < end && buf[i] !== 0x0a) i++;
    if (i >= end) throw cutShort('an end of line');
    const text = latin1(buf.subarray(pos, i));
    pos = i + 1;
    return text;
  };
  const text = (bytes: Uint8Array): string => utf8(bytes, `the string read by ${where()}`, ctx);
  const legacyString = (bytes: Uint8Array): string => {
    // Python 2 str: torch.load decodes it as UTF-8; fall back to latin-1 for binary contents.
    try {
      return utf8Decoder.decode(bytes);
    } catch {
      return latin1(bytes);
    }
  };
  const long = (bytes: Uint8Array): number | bigint => {
    if (bytes.length === 0) return 0;
    let value = 0n;
    for (let i = bytes.length - 1; i >= 0; i--) value = (value << 8n) | BigInt(bytes[i]);
    if (bytes[bytes.length - 1] & 0x80) value -= 1n << BigInt(8 * bytes.length);
    return toInt(value);
  };
  const toInt = (value: bigint): number | bigint =>
    value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value;
  const memoIndex = (text: string): number => {
    if (!/^\d+$/.test(text)) throw bad(`Expected a memo index but received ${JSON.stringify(text.slice(0, 20))}`);
    return Number(text);
  };
  const get = (index: number): void => {
    if (!memo.has(index)) throw bad(`memo entry ${index} was never stored`);
    stack.push(memo.get(index));
  };
  const setItem = (target: unknown, key: unknown, value: unknown): void => {
    if (target instanceof Map) target.set(key, value);
    else if (target instanceof PickledObject) (target.items ??= new Map()).set(key, value);
    else throw bad(`cannot set an item on ${describeValue(target)}`);
  };
  const append = (target: unknown, values: unknown[]): void => {
    if (Array.isArray(target)) target.push(...values);
    else if (target instanceof PickledObject) (target.list ??= []).push(...values);
    else throw bad(`cannot append to ${describeValue(target)}`);
  };
  const call = (fn: unknown, args: unknown): unknown => {
    if (!Array.isArray(args)) throw bad(`Expected an argument tuple but received ${describeValue(args)}`);
    if (fn instanceof Callable) return fn.call(args, ctx);
    if (fn instanceof UnknownGlobal) return new PickledObject(fn.name, args);
    if (fn instanceof StorageType) throw ctx.unsupported(`${where()}: constructing ${fn.name} directly is not supported`);
    throw bad(`cannot call ${describeValue(fn)}`);
  };

  while (pos < end) {
    opAt = pos;
    op = buf[pos++];
    switch (op) {
      case 0x80: { // PROTO
        need(1);
        const protocol = buf[pos++];
        if (protocol > 5) throw ctx.unsupported(`${where()}: pickle protocol ${protocol}`);
        break;
      }
      case 0x95: // FRAME (a hint; frames are contiguous)
        need(8);
        pos += 8;
        break;
      case 0x2e: { // STOP
        const value = pop();
        return { value, end: pos };
      }
      case 0x28: // MARK
        marks.push(stack);
        stack = [];
        break;
      case 0x30: // POP
        if (stack.length === 0 && marks.length > 0) popMark();
        else pop();
        break;
      case 0x31: // POP_MARK
        popMark();
        break;
      case 0x32: // DUP
        stack.push(top());
        break;
      case 0x4e: // NONE
        stack.push(null);
        break;
      case 0x88: // NEWTRUE
        stack.push(true);
        break;
      case 0x89: // NEWFALSE
        stack.push(false);
        break;
      case 0x4a: // BININT
        need(4);
        stack.push(view.getInt32(pos, true));
        pos += 4;
        break;
      case 0x4b: // BININT1
        need(1);
        stack.push(buf[pos++]);
        break;
      case 0x4d: // BININT2
        need(2);
        stack.push(view.getUint16(pos, true));
        pos += 2;
        break;
      case 0x8a: { // LONG1
        need(1);
        const n = buf[pos++];
        stack.push(long(readBytes(n)));
        break;
      }
      case 0x8b: { // LONG4
        need(4);
        const n = view.getInt32(pos, true);
        pos += 4;
        if (n < 0) throw bad(`negative length ${n}`);
        stack.push(long(readBytes(n)));
        break;
      }
      case 0x49: { // INT (protocol 0; also True/False as 01/00)
        const t = line();
        if (t === '01') stack.push(true);
        else if (t === '00') stack.push(false);
        else if (/^[-+]?\d+$/.test(t)) stack.push(toInt(BigInt(t)));
        else throw bad(`Expected an integer but received ${JSON.stringify(t.slice(0, 20))}`);
        break;
      }
      case 0x4c: { // LONG (protocol 0)
        const t = line().replace(/L$/, '');
        if (!/^[-+]?\d+$/.test(t)) throw bad(`Expected an integer but received ${JSON.stringify(t.slice(0, 20))}`);
        stack.push(toInt(BigInt(t)));
        break;
      }
      case 0x46: { // FLOAT (protocol 0)
        const t = line();
        const v = Number(t);
        if (t.trim() === '' || (Number.isNaN(v) && !/nan/i.test(t))) throw bad(`Expected a float but received ${JSON.stringify(t.slice(0, 20))}`);
        stack.push(v);
        break;
      }
      case 0x47: // BINFLOAT (big-endian)
        need(8);
        stack.push(view.getFloat64(pos, false));
        pos += 8;
        break;
      case 0x58: // BINUNICODE
        stack.push(text(readBytes(u32())));
        break;
      case 0x8c: // SHORT_BINUNICODE
        need(1);
        stack.push(text(readBytes(buf[pos++])));
        break;
      case 0x8d: // BINUNICODE8
        stack.push(text(readBytes(u64())));
        break;
      case 0x54: { // BINSTRING
        need(4);
        const n = view.getInt32(pos, true);
        pos += 4;
        if (n < 0) throw bad(`negative length ${n}`);
        stack.push(legacyString(readBytes(n)));
        break;
      }
      case 0x55: // SHORT_BINSTRING
        need(1);
        stack.push(legacyString(readBytes(buf[pos++])));
        break;
      case 0x42: // BINBYTES
        stack.push(readBytes(u32()).slice());
        break;
      case 0x43: // SHORT_BINBYTES
        need(1);
        stack.push(readBytes(buf[pos++]).slice());
        break;
      case 0x8e: // BINBYTES8
      case 0x96: // BYTEARRAY8
        stack.push(readBytes(u64()).slice());
        break;
      case 0x7d: // EMPTY_DICT
        stack.push(new Map());
        break;
      case 0x5d: // EMPTY_LIST
      case 0x29: // EMPTY_TUPLE
        stack.push([]);
        break;
      case 0x8f: // EMPTY_SET
        stack.push(new Set());
        break;
      case 0x90: { // ADDITEMS
        const items = popMark();
        const set = top();
        if (!(set instanceof Set)) throw bad(`cannot add items to ${describeValue(set)}`);
        for (const item of items) set.add(item);
        break;
      }
      case 0x91: { // FROZENSET
        const items = popMark(); // (before reading `stack`: popMark replaces it)
        stack.push(new Set(items));
        break;
      }
      case 0x64: { // DICT
        const items = popMark();
        if (items.length % 2) throw bad('an odd number of items');
        const dict = new Map();
        for (let i = 0; i < items.length; i += 2) dict.set(items[i], items[i + 1]);
        stack.push(dict);
        break;
      }
      case 0x6c: // LIST
      case 0x74: { // TUPLE
        const items = popMark();
        stack.push(items);
        break;
      }
      case 0x85: // TUPLE1
        stack.push([pop()]);
        break;
      case 0x86: { // TUPLE2
        const b = pop();
        const a = pop();
        stack.push([a, b]);
        break;
      }
      case 0x87: { // TUPLE3
        const c = pop();
        const b = pop();
        const a = pop();
        stack.push([a, b, c]);
        break;
      }
      case 0x61: { // APPEND
        const value = pop();
        append(top(), [value]);
        break;
      }
      case 0x65: { // APPENDS
        const items = popMark();
        append(top(), items);
        break;
      }
      case 0x73: { // SETITEM
        const value = pop();
        const key = pop();
        setItem(top(), key, value);
        break;
      }
      case 0x75: { // SETITEMS
        const items = popMark();
        if (items.length % 2) throw bad('an odd number of items');
        const target = top();
        for (let i = 0; i < items.length; i += 2) setItem(target, items[i], items[i + 1]);
        break;
      }
      case 0x63: { // GLOBAL
        const module = line();
        const name = line();
        stack.push(resolveGlobal(module, name));
        break;
      }
      case 0x93: { // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') throw bad('Expected a module and a name (strings)');
        stack.push(resolveGlobal(module, name));
        break;
      }
      case 0x52: { // REDUCE
        const args = pop();
        const fn = pop();
        stack.push(call(fn, args));
        break;
      }
      case 0x81: { // NEWOBJ
        const args = pop();
        const cls = pop();
        stack.push(call(cls, args));
        break;
      }
      case 0x92: { // NEWOBJ_EX
        pop(); // kwargs
        const args = pop();
        const cls = pop();
        stack.push(call(cls, args));
        break;
      }
      case 0x62: { // BUILD
        const state = pop();
        const target = top();
        if (target instanceof PickledObject) target.state = state;
        // OrderedDict attributes (state_dict._metadata), tensor attributes: nothing to keep.
        break;
      }
      case 0x70: // PUT
        memo.set(memoIndex(line()), top());
        break;
      case 0x71: // BINPUT
        need(1);
        memo.set(buf[pos++], top());
        break;
      case 0x72: // LONG_BINPUT
        memo.set(u32(), top());
        break;
      case 0x94: // MEMOIZE
        memo.set(memo.size, top());
        break;
      case 0x67: // GET
        get(memoIndex(line()));
        break;
      case 0x68: // BINGET
        need(1);
        get(buf[pos++]);
        break;
      case 0x6a: // LONG_BINGET
        get(u32());
        break;
      case 0x50: // PERSID
        stack.push(persistentLoad(line()));
        break;
      case 0x51: // BINPERSID
        stack.push(persistentLoad(pop()));
        break;
      default:
        throw ctx.unsupported(`${where()}: pickle opcode 0x${op.toString(16).padStart(2, '0')} is not supported`);
    }
  }
  throw ctx.malformed(`${source} is cut short: it ends at byte ${end} without a STOP opcode`);
}

// ---------------------------------------------------------------------------------------------
// State dict

function findStateDict(value: unknown, ctx: Context, path: string, depth: number): { dict: Map<unknown, unknown>; path: string } {
  const expected = `Expected a state dict (a dict of tensors) or a checkpoint dict with one of the entries ${STATE_DICT_ENTRIES.map((k) => `'${k}'`).join(', ')} for ${path ? `entry '${path.slice(0, -1)}' of ${ctx.what ?? 'the checkpoint'}` : `the object in ${ctx.what ?? 'the checkpoint'}`}`;
  if (value instanceof PickledObject) {
    const hint = value.className.includes('.') && !value.className.startsWith('collections.') ? ' (a pickled module or object; save model.state_dict() instead)' : '';
    throw new FaceError('E_MODEL', `${expected} but received an instance of ${value.className}${hint}`);
  }
  if (!(value instanceof Map)) throw new FaceError('E_MODEL', `${expected} but received ${describeValue(value)}`);
  const values = [...value.values()];
  if (values.length > 0 && values.every((v) => v instanceof Tensor)) return checkKeys(value, ctx, path);
  if (depth < 3) {
    for (const entry of STATE_DICT_ENTRIES) {
      const inner = value.get(entry);
      if (inner instanceof Map || inner instanceof PickledObject) return findStateDict(inner, ctx, `${path}${entry}.`, depth + 1);
    }
  }
  if (values.some((v) => v instanceof Tensor)) {
    // Mostly tensors: name the entry that is not one.
    for (const [key, v] of value) {
      if (!(v instanceof Tensor)) {
        const got = v instanceof PickledObject ? `an instance of ${v.className}` : describeValue(v);
        throw new FaceError('E_MODEL', `Expected a tensor for state-dict entry ${typeof key === 'string' ? `'${path}${key}'` : describeValue(key)} in ${ctx.what ?? 'the checkpoint'} but received ${got}`);
      }
    }
  }
  const keys = [...value.keys()].slice(0, 8).map(describeKey);
  throw new FaceError('E_MODEL', `${expected} but received a dict with ${value.size === 0 ? 'no entries' : `the keys ${keys.join(', ')}${value.size > 8 ? ', ...' : ''}`}`);
}

function checkKeys(dict: Map<unknown, unknown>, ctx: Context, path: string): { dict: Map<unknown, unknown>; path: string } {
  for (const key of dict.keys()) {
    if (typeof key !== 'string') {
      throw new FaceError('E_MODEL', `Expected string keys for the state dict ${path ? `'${path.slice(0, -1)}' ` : ''}in ${ctx.what ?? 'the checkpoint'} but received ${describeValue(key)}`);
    }
  }
  return { dict, path };
}

function describeKey(key: unknown): string {
  return typeof key === 'string' ? `'${key}'` : describeValue(key);
}
