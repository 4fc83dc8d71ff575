/**
 * Reads TensorFlow.js weights: a weights manifest (`<model>-weights_manifest.json`, as
 * @vladmandic/face-api ships them in `model/`) and the binary shard files it names.
 *
 * The manifest is a list of groups `{ paths: [shard, ...], weights: [spec, ...] }`. The shards of a
 * group, concatenated in `paths` order, hold the group's tensors back to back in `weights` order,
 * each as `prod(shape)` little-endian values of its storage type: the quantised type when the spec
 * has `quantization: { dtype: 'uint8' | 'uint16' | 'float16', scale, min }`, else `dtype` itself.
 * Dequantisation follows tfjs-core `io.decodeWeights` exactly: uint8/uint16 values q become
 * `q * scale + min` computed in float64 and stored as float32 (for dtype int32:
 * `Math.round(q * scale + min)`); float16 values are widened exactly. Unlike tfjs, which reads
 * what it finds, every byte is accounted for: a shard too short or too long for the manifest,
 * a missing file, a bad spec or a duplicate name is a FaceError E_MODEL naming the file and tensor.
 *
 * Also computes a SHA-256 over the manifest and every shard, the identity of a set of weights
 * (e.g. the key of a converted model in the cache).
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { FaceError, describeValue } from '../errors';
import { halfToFloat } from './torch-checkpoint';

/** Element types of the tensors a manifest may describe (face-api's models use float32 and int32). */
export type TfjsDType = 'float32' | 'int32';
export type TfjsQuantizationDType = 'uint8' | 'uint16' | 'float16';

export interface TfjsWeightSpec {
  name: string;
  shape: number[];
  dtype: TfjsDType;
  quantization?: { dtype: TfjsQuantizationDType; scale?: number; min?: number };
}

export interface TfjsWeightGroup {
  /** Shard file names, relative to the manifest's folder. */
  paths: string[];
  weights: TfjsWeightSpec[];
}

export interface TfjsTensor {
  /** The values as float32 (int32 tensors too: face-api's hold small integers such as sizes). */
  data: Float32Array;
  /** The tfjs shape (for conv filters HWIO, depthwise filters HWCM). */
  dims: number[];
  /** The tensor's declared dtype. */
  dtype: TfjsDType;
}

export interface TfjsWeights {
  /** Tensors by manifest name, in manifest order. */
  tensors: Map<string, TfjsTensor>;
  /** SHA-256 (hex) over the manifest and every shard; see {@link tfjsWeightsDigest}. */
  sha256: string;
  /** The manifest and shard files read, absolute. */
  files: string[];
}

const STORAGE_BYTES: Record<TfjsDType | TfjsQuantizationDType, number> = { float32: 4, int32: 4, uint8: 1, uint16: 2, float16: 2 };
const HOST_IS_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * Reads a weights manifest and its shards and decodes every tensor.
 *
 * @param manifestPath the `*-weights_manifest.json` file; shard paths are relative to its folder
 * @throws FaceError E_MODEL for an unreadable or malformed manifest, a missing, short or long shard
 */
export async function readTfjsWeights(manifestPath: string): Promise<TfjsWeights> {
  const { manifestBytes, groups, shards, files } = await readManifestAndShards(manifestPath);
  const tensors = decodeTfjsWeights(groups, shards, label(manifestPath));
  return { tensors, sha256: digest(manifestBytes, shards), files };
}

/**
 * SHA-256 (hex) over the manifest's bytes and then each shard's bytes in manifest order, each
 * preceded by its length as 8 bytes little-endian (so that moving bytes between files changes it).
 * Checks the manifest's structure but does not decode the tensors.
 *
 * @throws FaceError E_MODEL like {@link readTfjsWeights}, except for shard sizes
 */
export async function tfjsWeightsDigest(manifestPath: string): Promise<string> {
  const { manifestBytes, shards } = await readManifestAndShards(manifestPath);
  return digest(manifestBytes, shards);
}

/**
 * Validates a parsed manifest.
 *
 * @param source the manifest's name in messages
 * @throws FaceError E_MODEL naming the first problem
 */
export function parseTfjsManifest(json: unknown, source: string): TfjsWeightGroup[] {
  const bad = (what: string, expected: string, value: unknown): FaceError =>
    new FaceError('E_MODEL', `Expected ${expected} for ${what} in the weights manifest ${source} but received ${describeValue(value)}`);
  if (!Array.isArray(json)) throw bad('the manifest', 'an array of weight groups', json);
  if (json.length === 0) throw new FaceError('E_MODEL', `The weights manifest ${source} lists no weight groups`);
  const names = new Set<string>();
  return json.map((group: unknown, g) => {
    if (typeof group !== 'object' || group === null || Array.isArray(group)) throw bad(`group ${g}`, 'an object with paths and weights', group);
    const { paths, weights } = group as { paths?: unknown; weights?: unknown };
    if (!Array.isArray(paths) || paths.length === 0) throw bad(`group ${g} paths`, 'a non-empty array of shard file names', paths);
    paths.forEach((p: unknown, i) => {
      if (typeof p !== 'string' || p.length === 0) throw bad(`group ${g} paths[${i}]`, 'a shard file name', p);
      if (path.isAbsolute(p) || p.includes('\\') || p.split('/').some((part) => part === '..' || part === '')) {
        throw bad(`group ${g} paths[${i}]`, "a relative '/'-separated path inside the manifest's folder", p);
      }
    });
    if (!Array.isArray(weights)) throw bad(`group ${g} weights`, 'an array of weight specs', weights);
    const specs = weights.map((w: unknown, i): TfjsWeightSpec => {
      const where = `group ${g} weights[${i}]`;
      if (typeof w !== 'object' || w === null || Array.isArray(w)) throw bad(where, 'an object with name, shape and dtype', w);
      const { name, shape, dtype, quantization } = w as Record<string, unknown>;
      if (typeof name !== 'string' || name.length === 0) throw bad(`${where}.name`, 'a non-empty string', name);
      const tensor = `tensor '${name}'`;
      if (names.has(name)) throw new FaceError('E_MODEL', `The weights manifest ${source} names the ${tensor} twice`);
      names.add(name);
      if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
        throw bad(`the shape of ${tensor}`, 'an array of non-negative integers', shape);
      }
      if (dtype !== 'float32' && dtype !== 'int32') {
        throw new FaceError('E_MODEL', `Unsupported dtype ${describeValue(dtype)} of ${tensor} in the weights manifest ${source}: only float32 and int32 tensors are supported`);
      }
      const spec: TfjsWeightSpec = { name, shape: [...(shape as number[])], dtype };
      if (quantization !== undefined) {
        if (typeof quantization !== 'object' || quantization === null) throw bad(`the quantization of ${tensor}`, 'an object with dtype, scale and min', quantization);
        const q = quantization as Record<string, unknown>;
        if (q.dtype !== 'uint8' && q.dtype !== 'uint16' && q.dtype !== 'float16') {
          throw bad(`the quantization dtype of ${tensor}`, "'uint8', 'uint16' or 'float16'", q.dtype);
        }
        if (q.dtype === 'float16') {
          if (dtype !== 'float32') throw new FaceError('E_MODEL', `The ${tensor} in the weights manifest ${source} is quantised as float16, which applies to float32 tensors only, but its dtype is ${dtype}`);
          spec.quantization = { dtype: 'float16' };
        } else {
          for (const key of ['scale', 'min'] as const) {
            if (typeof q[key] !== 'number' || !Number.isFinite(q[key])) throw bad(`the quantization ${key} of ${tensor}`, 'a finite number', q[key]);
          }
          spec.quantization = { dtype: q.dtype, scale: q.scale as number, min: q.min as number };
        }
      }
      return spec;
    });
    return { paths: [...(paths as string[])], weights: specs };
  });
}

/**
 * Decodes the tensors of validated groups from their shards' bytes.
 *
 * @param shards per group, the bytes of each file in `paths`, in order
 * @param source the manifest's name in messages
 * @throws FaceError E_MODEL when a group's shards hold fewer or more bytes than its tensors need
 */
export function decodeTfjsWeights(groups: readonly TfjsWeightGroup[], shards: readonly (readonly Uint8Array[])[], source: string): Map<string, TfjsTensor> {
  const tensors = new Map<string, TfjsTensor>();
  groups.forEach((group, g) => {
    const files = shards[g] ?? [];
    if (files.length !== group.paths.length) {
      throw new FaceError('E_INTERNAL', `Expected ${group.paths.length} shards for group ${g} of ${source} but received ${files.length}`);
    }
    const total = files.reduce((n, f) => n + f.byteLength, 0);
    const bytes = concat(files, total);
    const shardOf = (offset: number): string => {
      let end = 0;
      for (let i = 0; i < files.length; i++) {
        end += files[i]!.byteLength;
        if (offset < end) return `'${group.paths[i]}'`;
      }
      return `'${group.paths[group.paths.length - 1]}'`;
    };
    const shardList = group.paths.map((p, i) => `'${p}' (${files[i]!.byteLength} bytes)`).join(' + ');
    let offset = 0;
    for (const spec of group.weights) {
      const count = spec.shape.reduce((a, b) => a * b, 1);
      const storage = spec.quantization?.dtype ?? spec.dtype;
      const byteLength = count * STORAGE_BYTES[storage];
      if (offset + byteLength > total) {
        const needed = group.weights.reduce((n, w) => n + w.shape.reduce((a, b) => a * b, 1) * STORAGE_BYTES[w.quantization?.dtype ?? w.dtype], 0);
        throw new FaceError(
          'E_MODEL',
          `Truncated weights: tensor '${spec.name}' [${spec.shape.join(', ')}] (${storage}, ${byteLength} bytes at offset ${offset}) runs past the end of ${shardOf(Math.max(0, total - 1))}; ` +
            `the manifest ${source} needs ${needed} bytes for this group but its shards ${shardList} hold ${total}`,
        );
      }
      tensors.set(spec.name, { data: decodeTensor(spec, bytes, offset, count), dims: spec.shape, dtype: spec.dtype });
      offset += byteLength;
    }
    if (offset !== total) {
      throw new FaceError('E_MODEL', `The weight shards ${shardList} hold ${total - offset} bytes more than the ${offset} that the manifest ${source} describes (a different or damaged file?)`);
    }
  });
  return tensors;
}

function decodeTensor(spec: TfjsWeightSpec, bytes: Uint8Array, offset: number, count: number): Float32Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset + offset, count * STORAGE_BYTES[spec.quantization?.dtype ?? spec.dtype]);
  const out = new Float32Array(count);
  const q = spec.quantization;
  if (q === undefined) {
    if (spec.dtype === 'float32') {
      if (HOST_IS_LITTLE_ENDIAN) new Uint8Array(out.buffer).set(bytes.subarray(offset, offset + count * 4));
      else for (let i = 0; i < count; i++) out[i] = view.getFloat32(i * 4, true);
    } else {
      for (let i = 0; i < count; i++) out[i] = view.getInt32(i * 4, true);
    }
    return out;
  }
  if (q.dtype === 'float16') {
    for (let i = 0; i < count; i++) out[i] = halfToFloat(view.getUint16(i * 2, true));
    return out;
  }
  const scale = q.scale!;
  const min = q.min!;
  const read = q.dtype === 'uint8' ? (i: number) => view.getUint8(i) : (i: number) => view.getUint16(i * 2, true);
  // tfjs: values[i] = v * scale + min in float64, stored into a Float32Array (int32: Math.round first).
  if (spec.dtype === 'int32') for (let i = 0; i < count; i++) out[i] = Math.round(read(i) * scale + min);
  else for (let i = 0; i < count; i++) out[i] = read(i) * scale + min;
  return out;
}

async function readManifestAndShards(manifestPath: string): Promise<{ manifestBytes: Uint8Array; groups: TfjsWeightGroup[]; shards: Uint8Array[][]; files: string[] }> {
  if (typeof manifestPath !== 'string' || manifestPath.length === 0) {
    throw new FaceError('E_MODEL', `Expected the path of a weights manifest but received ${describeValue(manifestPath)}`);
  }
  const file = path.resolve(manifestPath);
  const source = label(manifestPath);
  let manifestBytes: Uint8Array;
  try {
    manifestBytes = await fs.readFile(file);
  } catch (cause) {
    throw new FaceError('E_MODEL', `Cannot read the weights manifest ${source}: ${(cause as Error).message}`, { cause });
  }
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(manifestBytes).toString('utf8'));
  } catch (cause) {
    throw new FaceError('E_MODEL', `The weights manifest ${source} is not valid JSON: ${(cause as Error).message}`, { cause });
  }
  const groups = parseTfjsManifest(json, source);
  const dir = path.dirname(file);
  const files = [file];
  const shards: Uint8Array[][] = [];
  for (const group of groups) {
    const bytes: Uint8Array[] = [];
    for (const p of group.paths) {
      const shard = path.join(dir, p);
      try {
        bytes.push(await fs.readFile(shard));
      } catch (cause) {
        throw new FaceError('E_MODEL', `Cannot read the weight shard '${p}' named by the manifest ${source}: ${(cause as Error).message}`, { cause });
      }
      files.push(shard);
    }
    shards.push(bytes);
  }
  return { manifestBytes, groups, shards, files };
}

function digest(manifestBytes: Uint8Array, shards: readonly (readonly Uint8Array[])[]): string {
  const hash = createHash('sha256');
  const length = Buffer.alloc(8);
  for (const part of [manifestBytes, ...shards.flat()]) {
    length.writeBigUInt64LE(BigInt(part.byteLength));
    hash.update(length);
    hash.update(part);
  }
  return hash.digest('hex');
}

function concat(parts: readonly Uint8Array[], total: number): Uint8Array {
  if (parts.length === 1) return parts[0]!;
  const out = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}

function label(manifestPath: string): string {
  return `'${manifestPath}'`;
}
