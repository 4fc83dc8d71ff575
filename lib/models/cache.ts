/**
 * A cache of converted models (ONNX bytes), so that weights shipped in another format are
 * converted once, on first use, and never committed or shipped.
 *
 * Where: FACESIGHT_CACHE when set; else `node_modules/.cache/facesight` inside the package root
 * when that can be created and written; else `<os.tmpdir()>/facesight-cache`.
 *
 * A model is stored as `<name>-<key>-<sha256 of the bytes>.onnx`: `key` identifies what it was built
 * from (e.g. a digest of the source weights and the converter version), and the content digest in
 * the name is checked on every read, so a truncated or damaged file is rebuilt, never used. Files are
 * written to a temporary name in the same folder and renamed into place (atomic on one file system),
 * so concurrent processes never see a partial file.
 */
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs/promises';
import { constants as fsConstants } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { packageRoot } from '../binding';
import { FaceError, invalidType, invalidRange } from '../errors';

const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const KEY_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const HEX64 = /^[0-9a-f]{64}$/;

/** The cache folder (created if needed); see the module comment for the order of choice. */
export async function cacheDir(env: NodeJS.ProcessEnv = process.env): Promise<string> {
  if (env.FACESIGHT_CACHE) {
    const dir = path.resolve(env.FACESIGHT_CACHE);
    try {
      await fs.mkdir(dir, { recursive: true });
    } catch (cause) {
      throw new FaceError('E_INPUT', `Cannot create the model cache folder FACESIGHT_CACHE='${env.FACESIGHT_CACHE}': ${(cause as Error).message}`, { cause });
    }
    return dir;
  }
  const local = path.join(packageRoot, 'node_modules', '.cache', 'facesight');
  if (await writableDir(local)) return local;
  const tmp = path.join(os.tmpdir(), 'facesight-cache');
  await fs.mkdir(tmp, { recursive: true });
  return tmp;
}

export interface CachedModelOptions {
  /** The cache folder (default {@link cacheDir}). */
  dir?: string;
}

const pending = new Map<string, Promise<Uint8Array>>();

/**
 * The bytes of model `name` built from `key`: read from the cache when a verified copy is there,
 * otherwise built with `build()`, stored and returned. A cache that cannot be written only costs
 * the rebuild next time (a process warning says why).
 *
 * @param name a file-name-safe model name, e.g. 'faceapi-recognition'
 * @param build produces the bytes (e.g. runs a converter)
 * @param key what the bytes are built from, file-name safe (e.g. a SHA-256 in hex)
 * @throws whatever `build` throws; FaceError E_INPUT for a bad name or key
 */
export async function cachedModel(name: string, build: () => Promise<Uint8Array>, key: string, opts: CachedModelOptions = {}): Promise<Uint8Array> {
  if (typeof name !== 'string') throw invalidType('a string', 'cachedModel(name)', name);
  if (!NAME_PATTERN.test(name)) throw invalidRange('letters, digits, ".", "_" and "-" (1 to 64, not starting with a symbol)', 'cachedModel(name)', name);
  if (typeof build !== 'function') throw invalidType('a function returning a Promise of bytes', 'cachedModel(build)', build);
  if (typeof key !== 'string') throw invalidType('a string', 'cachedModel(key)', key);
  if (!KEY_PATTERN.test(key)) throw invalidRange('letters, digits, ".", "_" and "-" (1 to 128, not starting with a symbol)', 'cachedModel(key)', key);
  const dir = opts.dir !== undefined ? path.resolve(opts.dir) : await cacheDir();
  const id = path.join(dir, `${name}-${key}`);
  let job = pending.get(id);
  if (!job) {
    job = lookupOrBuild(dir, `${name}-${key}-`, build).finally(() => pending.delete(id));
    pending.set(id, job);
  }
  return job;
}

async function lookupOrBuild(dir: string, prefix: string, build: () => Promise<Uint8Array>): Promise<Uint8Array> {
  const found = await readVerified(dir, prefix);
  if (found) return found;
  const bytes = await build();
  if (!(bytes instanceof Uint8Array)) throw invalidType('a Promise of a Uint8Array', 'the result of cachedModel(build)', bytes);
  const digest = sha256(bytes);
  const file = path.join(dir, `${prefix}${digest}.onnx`);
  const temp = path.join(dir, `.${prefix}${process.pid}-${randomBytes(6).toString('hex')}.tmp`);
  try {
    await fs.mkdir(dir, { recursive: true });
    await fs.writeFile(temp, bytes, { flag: 'wx' });
    await fs.rename(temp, file);
  } catch (cause) {
    await fs.rm(temp, { force: true }).catch(() => undefined);
    process.emitWarning(`facesight could not store a converted model in the cache folder '${dir}' (${(cause as Error).message}); it will be converted again next time. Set FACESIGHT_CACHE to a writable folder.`, 'FacesightCacheWarning');
  }
  return bytes;
}

/** The first `<prefix><sha256>.onnx` whose bytes match its digest; damaged ones are removed. */
async function readVerified(dir: string, prefix: string): Promise<Uint8Array | undefined> {
  let names: string[];
  try {
    names = await fs.readdir(dir);
  } catch {
    return undefined;
  }
  for (const entry of names) {
    if (!entry.startsWith(prefix) || !entry.endsWith('.onnx')) continue;
    const digest = entry.slice(prefix.length, -'.onnx'.length);
    if (!HEX64.test(digest)) continue;
    const file = path.join(dir, entry);
    let bytes: Uint8Array;
    try {
      const buffer = await fs.readFile(file);
      bytes = new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
    } catch {
      continue;
    }
    if (sha256(bytes) === digest) return bytes;
    await fs.rm(file, { force: true }).catch(() => undefined);
  }
  return undefined;
}

async function writableDir(dir: string): Promise<boolean> {
  try {
    await fs.mkdir(dir, { recursive: true });
    await fs.access(dir, fsConstants.W_OK);
    return true;
  } catch {
    return false;
  }
}

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}
