/**
 * The face database: names with one embedding each, built from a folder of photos, searched with the
 * seed's compare_faces (Euclidean distance to every entry, nearest name if within the threshold, else
 * "Unknown"), saved and loaded as .npy files.
 *
 * Storage: the embeddings sit in one row-major Float32Array (`dim` floats per entry) that grows by
 * doubling, so a search hands the whole gallery to the native distance kernel without copying. The
 * arrays are copy-on-write with respect to searches in flight: `add` only writes past the rows a running
 * search reads (or into a new, larger array), and `remove` builds new arrays, so a search always sees
 * the database as it was when it started.
 *
 * Files (`save('faces.npy')`):
 * - `faces.npy`        float32 [N, dim] embeddings (NumPy reads it with np.load)
 * - `faces.names.npy`  '<U{n}' [N] names, as the seed's np.save(names) writes them
 * - `faces.json`       { format: 'facesight-face-database', version: 1, embedder, dim, count, threshold,
 *                        sha256: { embeddings, names } }
 * `load` also reads the seed's layout: `{backbone}_face_encoding.npy` with `{backbone}_names.npy` beside
 * it (model_data/mobilenet_face_encoding.npy, …), given either file or their folder.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { binding } from '../binding';
import { FaceError, FaceRangeError, describeValue, fromNative, invalidRange, invalidType } from '../errors';
import type { RawFrame } from './image';
import { largestFace } from './faces';
import { decodeNpy, encodeNpy } from './npy';

/** One face found and embedded by an engine. */
export interface EmbeddedFace {
  readonly box: { readonly x: number; readonly y: number; readonly width: number; readonly height: number };
  readonly score: number;
  /** L2-normalised. */
  readonly embedding: Float32Array;
}

/** What an engine says about its embedding model. */
export interface EmbedderInfo {
  readonly name: string;
  /** The embedding length (0 when the model does not say). */
  readonly size: number;
  /** The model's default match threshold (Euclidean distance), or null. */
  readonly threshold: number | null;
}

/**
 * What `FaceDatabase.fromDirectory` needs from an engine (FaceEngine satisfies it; tests pass stubs):
 * `embed` detects and embeds every face of each input, one list per input in input order, with one
 * native call per batch; a file that cannot be read or decoded rejects with FaceError E_INPUT.
 */
export interface FaceEmbedder {
  embed(inputs: readonly (string | Uint8Array | RawFrame)[]): Promise<readonly (readonly EmbeddedFace[])[]>;
  readonly embedder: EmbedderInfo | null;
}

export interface FaceDatabaseOptions {
  /** The Euclidean distance at or below which a query matches an entry; the default of `match`. */
  threshold?: number;
  /** The name of the embedding model that made the embeddings (kept in saved files). */
  embedder?: string | null;
  /** The embedding length; otherwise fixed by the first `add`. */
  dim?: number;
}

export interface EnrolmentProgress {
  /** Images processed so far (1 after the first). */
  done: number;
  total: number;
  /** The image just processed. */
  file: string;
}

export interface FromDirectoryOptions {
  /** Called after each image. */
  onProgress?: (progress: EnrolmentProgress) => void;
  /** Image file extensions (case-insensitive, with or without the dot). Default: jpg jpeg png webp bmp tif tiff. */
  extensions?: readonly string[];
  /** Images per `engine.embed` call (1–256, default 8). */
  batchSize?: number;
  /** The database's threshold; default the engine's embedder threshold. */
  threshold?: number;
}

/** What `fromDirectory` did with each image. Files are the paths given to the engine (dir joined with the file). */
export interface EnrolmentReport {
  readonly enrolled: readonly { readonly file: string; readonly name: string }[];
  /** Images in which no face was found. */
  readonly noFace: readonly string[];
  /** Images that could not be read or decoded, with the error message. */
  readonly failed: readonly { readonly file: string; readonly error: string }[];
}

export interface MatchOptions {
  /** Default: the database's threshold. */
  threshold?: number;
}

export interface LoadOptions {
  /** Overrides the threshold saved with the database. */
  threshold?: number;
}

/** The seed's compare_faces for one query. */
export interface Match {
  /** The nearest entry's name if its distance ≤ threshold, else 'Unknown'. */
  name: string;
  /** The nearest entry's distance (Infinity for an empty database). */
  distance: number;
  /** The nearest entry's index (−1 for an empty database). */
  index: number;
  /** Per entry: distance ≤ threshold. */
  matches: boolean[];
  /** Per entry: the Euclidean distance to the query. */
  distances: Float32Array;
}

export const DEFAULT_EXTENSIONS: readonly string[] = ['.jpg', '.jpeg', '.png', '.webp', '.bmp', '.tif', '.tiff'];
export const UNKNOWN = 'Unknown';
const DEFAULT_BATCH = 8;
const FORMAT = 'facesight-face-database';
const VERSION = 1;
const SEED_SUFFIX = 'face_encoding.npy';
const MAX_JSON_BYTES = 1 << 20;

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !ArrayBuffer.isView(value);
}

function checkOptions(options: unknown, keys: readonly string[], what: string): Record<string, unknown> {
  if (options === undefined) return {};
  if (!isPlainObject(options)) throw invalidType('an options object', what, options);
  for (const key of Object.keys(options)) {
    if (!keys.includes(key)) throw invalidRange(`one of ${keys.join(', ')}`, `${what} key`, key);
  }
  return options;
}

function checkThreshold(value: unknown, what: string): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number') throw invalidType('a distance threshold (a number ≥ 0)', what, value);
  if (!Number.isFinite(value) || value < 0) throw invalidRange('a distance threshold (a finite number ≥ 0)', what, value);
  return value;
}

function checkName(name: unknown, what: string): string {
  if (typeof name !== 'string') throw invalidType('a name (string)', what, name);
  if (name.length === 0) throw invalidRange('a non-empty name', what, name);
  // The names file pads with NULs and NumPy strips trailing ones: a NUL could not be stored.
  if (name.includes('\0')) throw invalidRange('a name without NUL characters', what, name);
  return name;
}

/** The index of the first NaN / ±Infinity in `values`, or −1. */
function firstNonFinite(values: Float32Array | Float64Array): number {
  for (let k = 0; k < values.length; k++) if (!Number.isFinite(values[k])) return k;
  return -1;
}

function checkEmbedding(value: unknown, dim: number | null, what: string): Float32Array {
  if (!(value instanceof Float32Array)) throw invalidType('a Float32Array', what, value);
  if (dim !== null && value.length !== dim) throw invalidRange(`a Float32Array of length ${dim} (the database's embedding length)`, what, value);
  if (value.length === 0) throw invalidRange('a Float32Array of length ≥ 1', what, value);
  const bad = firstNonFinite(value);
  if (bad >= 0) throw new FaceRangeError(`Expected finite values for ${what} but received ${value[bad]} at index ${bad}`);
  return value;
}

function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The person's name for a flat-layout file: the base name left of the first '_' (all of it without one). */
export function nameFromFile(file: string): string {
  const base = path.parse(file).name;
  const cut = base.indexOf('_');
  return cut > 0 ? base.slice(0, cut) : base;
}

export class FaceDatabase {
  #data: Float32Array = new Float32Array(0);
  #names: string[] = [];
  #size = 0;
  #dim: number | null;
  #threshold: number | null;
  #embedder: string | null;
  #report: EnrolmentReport | null = null;

  constructor(options?: FaceDatabaseOptions) {
    const o = checkOptions(options, ['threshold', 'embedder', 'dim'], 'FaceDatabase options');
    this.#threshold = checkThreshold(o.threshold, 'options.threshold') ?? null;
    if (o.embedder !== undefined && o.embedder !== null && typeof o.embedder !== 'string') throw invalidType('a model name (string) or null', 'options.embedder', o.embedder);
    this.#embedder = (o.embedder as string | null | undefined) ?? null;
    if (o.dim !== undefined) {
      if (typeof o.dim !== 'number') throw invalidType('a positive integer', 'options.dim', o.dim);
      if (!Number.isSafeInteger(o.dim) || o.dim < 1 || o.dim > 65536) throw invalidRange('an integer from 1 to 65536', 'options.dim', o.dim);
    }
    this.#dim = (o.dim as number | undefined) ?? null;
  }

  /** Entries (embeddings), not people: see names(). */
  get size(): number {
    return this.#size;
  }

  /** The embedding length, or null while the database is empty and none was given. */
  get dim(): number | null {
    return this.#dim;
  }

  /** The name of the embedding model that made the embeddings, or null when unknown (the seed's files). */
  get embedder(): string | null {
    return this.#embedder;
  }

  /** The default threshold of match(), or null. */
  get threshold(): number | null {
    return this.#threshold;
  }

  /** What fromDirectory did with each image; null for a database made otherwise. */
  get report(): EnrolmentReport | null {
    return this.#report;
  }

  /**
   * Adds one entry; returns its index. The embedding is copied.
   *
   * @throws FaceTypeError / FaceRangeError (E_INPUT): a name that is not a non-empty string; an embedding
   *   that is not a Float32Array, has another length than the database's, or holds NaN / Infinity
   */
  add(name: string, embedding: Float32Array): number {
    checkName(name, 'name');
    checkEmbedding(embedding, this.#dim, 'embedding');
    const dim = (this.#dim ??= embedding.length);
    if ((this.#size + 1) * dim > this.#data.length) {
      const capacity = Math.max(16, 2 * this.#size);
      const grown = new Float32Array(capacity * dim);
      grown.set(this.#data.subarray(0, this.#size * dim));
      this.#data = grown;
    }
    this.#data.set(embedding, this.#size * dim);
    this.#names.push(name);
    return this.#size++;
  }

  /** Removes every entry of this name; returns how many there were. */
  remove(name: string): number {
    if (typeof name !== 'string') throw invalidType('a name (string)', 'name', name);
    const removed = this.#names.reduce((n, entry) => n + (entry === name ? 1 : 0), 0);
    if (removed === 0) return 0;
    const dim = this.#dim!;
    const keep = this.#size - removed;
    // New arrays, not compaction in place: a search in flight keeps reading the old ones.
    const data = new Float32Array(Math.max(keep, 16) * dim);
    const names: string[] = [];
    for (let k = 0; k < this.#size; k++) {
      if (this.#names[k] === name) continue;
      data.set(this.#data.subarray(k * dim, (k + 1) * dim), names.length * dim);
      names.push(this.#names[k]);
    }
    this.#data = data;
    this.#names = names;
    this.#size = keep;
    return removed;
  }

  /** The distinct names, sorted (by code point). */
  names(): string[] {
    return [...new Set(this.#names.slice(0, this.#size))].sort(compareStrings);
  }

  /** Every entry in index order; the embeddings are copies. */
  *entries(): IterableIterator<{ name: string; embedding: Float32Array }> {
    const names = this.#names;
    const data = this.#data;
    const size = this.#size;
    const dim = this.#dim ?? 0;
    for (let k = 0; k < size; k++) yield { name: names[k], embedding: data.slice(k * dim, (k + 1) * dim) };
  }

  /**
   * The seed's compare_faces: the Euclidean distance from `embedding` to every entry (computed off the
   * event loop by the native addon), the per-entry `distance ≤ threshold` flags, and the nearest entry's
   * name when it is within the threshold, else 'Unknown'.
   *
   * @throws FaceTypeError / FaceRangeError (E_INPUT) for a wrong embedding or threshold, or no threshold
   *   at all (neither options.threshold nor the database's)
   */
  async match(embedding: Float32Array, options?: MatchOptions): Promise<Match> {
    const threshold = this.#resolveThreshold(options, 'match');
    checkEmbedding(embedding, this.#dim, 'embedding');
    return (await this.#search([embedding], threshold))[0];
  }

  /** match() for many queries in one native call; one Match per query, in order. */
  async matchMany(embeddings: readonly Float32Array[], options?: MatchOptions): Promise<Match[]> {
    const threshold = this.#resolveThreshold(options, 'matchMany');
    if (!Array.isArray(embeddings)) throw invalidType('an array of Float32Array embeddings', 'embeddings', embeddings);
    let dim = this.#dim;
    embeddings.forEach((e, k) => {
      checkEmbedding(e, dim, `embeddings[${k}]`);
      dim ??= e.length;
    });
    if (embeddings.length === 0) return [];
    return this.#search(embeddings, threshold);
  }

  #resolveThreshold(options: unknown, method: string): number {
    const o = checkOptions(options, ['threshold'], `${method}(options)`);
    const threshold = checkThreshold(o.threshold, 'options.threshold') ?? this.#threshold;
    if (threshold === null) {
      throw new FaceRangeError(`Expected a distance threshold for options.threshold (the database has no default threshold) but received ${describeValue(o.threshold)}`);
    }
    return threshold;
  }

  async #search(queries: readonly Float32Array[], threshold: number): Promise<Match[]> {
    // A snapshot: add() and remove() while the native call runs do not touch these rows.
    const names = this.#names;
    const size = this.#size;
    if (size === 0) {
      return queries.map(() => ({ name: UNKNOWN, distance: Infinity, index: -1, matches: [], distances: new Float32Array(0) }));
    }
    const dim = this.#dim!;
    const gallery = this.#data.subarray(0, size * dim);
    let packed: Float32Array;
    if (queries.length === 1) {
      packed = queries[0];
    } else {
      packed = new Float32Array(queries.length * dim);
      queries.forEach((q, k) => packed.set(q, k * dim));
    }
    const native = binding();
    const callerStack = new Error();
    let result: Awaited<ReturnType<typeof native.distances>>;
    try {
      result = await native.distances(packed, gallery, dim, 1, true);
    } catch (error) {
      throw fromNative(error, callerStack);
    }
    const all = result.distances;
    if (!(all instanceof Float32Array) || all.length !== queries.length * size || result.topIndex.length !== queries.length) {
      throw new FaceError('E_INTERNAL', `The native distances returned ${describeValue(all)} for ${queries.length} queries × ${size} entries`);
    }
    return queries.map((_, q) => {
      const distances = queries.length === 1 ? all : all.slice(q * size, (q + 1) * size);
      const index = result.topIndex[q];
      const distance = distances[index];
      const matches = new Array<boolean>(size);
      for (let k = 0; k < size; k++) matches[k] = distances[k] <= threshold;
      return { name: distance <= threshold ? names[index] : UNKNOWN, distance, index, matches, distances };
    });
  }

  /**
   * Enrols every image under `dir`: one folder per person (dir/Name/*.jpg), or the seed's flat layout
   * (dir/Name_1.jpg, the name left of the first '_'; a file without '_' gives its whole base name), or
   * both mixed. Hidden files and deeper folders are ignored. Images are processed in sorted order (by
   * path, code point order). From each image the largest face (box area) is kept. Images without a
   * face and images that cannot be decoded are reported (`database.report`), and enrolment goes on.
   * Images go to `engine.embed` in batches; a batch that rejects is retried image by image.
   *
   * @throws FaceTypeError / FaceRangeError (E_INPUT) for wrong arguments; FaceError E_INPUT when `dir`
   *   cannot be read; any engine error other than an unreadable image (E_STATE, E_NATIVE, …)
   */
  static async fromDirectory(dir: string, engine: FaceEmbedder, options?: FromDirectoryOptions): Promise<FaceDatabase> {
    if (typeof dir !== 'string' || dir.length === 0) throw invalidType('a folder path', 'dir', dir);
    if (typeof engine !== 'object' || engine === null || typeof (engine as { embed?: unknown }).embed !== 'function') throw invalidType('a face engine (an object with embed())', 'engine', engine);
    const o = checkOptions(options, ['onProgress', 'extensions', 'batchSize', 'threshold'], 'fromDirectory(options)');
    const onProgress = o.onProgress;
    if (onProgress !== undefined && typeof onProgress !== 'function') throw invalidType('a function', 'options.onProgress', onProgress);
    const extensions = checkExtensions(o.extensions);
    const batchSize = o.batchSize ?? DEFAULT_BATCH;
    if (typeof batchSize !== 'number') throw invalidType('an integer from 1 to 256', 'options.batchSize', batchSize);
    if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > 256) throw invalidRange('an integer from 1 to 256', 'options.batchSize', batchSize);
    const threshold = checkThreshold(o.threshold, 'options.threshold');
    const info = engine.embedder;
    if (!isPlainObject(info) || typeof info.name !== 'string') {
      throw invalidType('an engine with an embedding model (engine.embedder)', 'engine', info === null || info === undefined ? info : engine);
    }

    const images = await listImages(dir, extensions);
    const database = new FaceDatabase({
      embedder: info.name,
      threshold: threshold ?? (typeof info.threshold === 'number' ? info.threshold : undefined),
      dim: Number.isSafeInteger(info.size) && info.size > 0 ? info.size : undefined,
    });
    const enrolled: { file: string; name: string }[] = [];
    const noFace: string[] = [];
    const failed: { file: string; error: string }[] = [];
    let done = 0;
    for (let start = 0; start < images.length; start += batchSize) {
      const batch = images.slice(start, start + batchSize);
      const outcomes = await embedBatch(engine, batch.map((image) => image.file));
      batch.forEach((image, k) => {
        const outcome = outcomes[k];
        if ('error' in outcome) {
          failed.push({ file: image.file, error: outcome.error });
        } else if (outcome.faces.length === 0) {
          noFace.push(image.file);
        } else {
          const face = largestFace(outcome.faces)!; // faces is not empty here
          const embedding = face.embedding;
          if (!(embedding instanceof Float32Array) || embedding.length === 0 || (database.dim !== null && embedding.length !== database.dim)) {
            throw new FaceError('E_INTERNAL', `The engine returned ${describeValue(embedding)} as the embedding of ${image.file} (expected a Float32Array of length ${database.dim ?? '≥ 1'})`);
          }
          const bad = firstNonFinite(embedding);
          if (bad >= 0) {
            failed.push({ file: image.file, error: `The embedding of ${image.file} holds ${embedding[bad]} at index ${bad}` });
          } else {
            database.add(image.name, embedding);
            enrolled.push({ file: image.file, name: image.name });
          }
        }
        done++;
        (onProgress as ((p: EnrolmentProgress) => void) | undefined)?.({ done, total: images.length, file: image.file });
      });
    }
    database.#report = Object.freeze({ enrolled: Object.freeze(enrolled), noFace: Object.freeze(noFace), failed: Object.freeze(failed) });
    return database;
  }

  /**
   * Writes the database: the embeddings to `file` (which must end in '.npy'), the names beside it as
   * `<stem>.names.npy` and a description with both files' SHA-256 as `<stem>.json`.
   *
   * Crash safety: each file is written in full to a temporary name in the same folder and fsynced, then
   * renamed over the old one (rename is atomic within a folder), the JSON last. A save that stops
   * before the first rename leaves the previous database exactly as it was. One that stops between
   * renames leaves new .npy files beside the previous JSON, whose checksums no longer match them, so
   * `load` refuses the mixture (E_DATABASE) instead of pairing names with the wrong embeddings.
   *
   * @throws FaceRangeError for a path not ending in '.npy'; FaceError E_INPUT when a file cannot be written
   */
  async save(file: string): Promise<void> {
    if (typeof file !== 'string') throw invalidType("a file path ending in '.npy'", 'path', file);
    if (!/\.npy$/i.test(file) || file.length <= 4) throw invalidRange("a file path ending in '.npy'", 'path', file);
    const { embeddings: embeddingsFile, names: namesFile, json: jsonFile } = ourFiles(file);
    const size = this.#size;
    const dim = this.#dim;
    const embeddingBytes = encodeNpy({ dtype: 'float32', shape: [size, dim ?? 0], data: this.#data.slice(0, size * (dim ?? 0)) });
    const nameBytes = encodeNpy({ dtype: 'unicode', shape: [size], data: this.#names.slice(0, size) });
    const description = {
      format: FORMAT,
      version: VERSION,
      embedder: this.#embedder,
      dim,
      count: size,
      threshold: this.#threshold,
      files: { embeddings: path.basename(embeddingsFile), names: path.basename(namesFile) },
      sha256: { embeddings: sha256(embeddingBytes), names: sha256(nameBytes) },
    };
    const jsonBytes = new TextEncoder().encode(`${JSON.stringify(description, null, 2)}\n`);
    await writeTogether(file, [
      { target: embeddingsFile, bytes: embeddingBytes },
      { target: namesFile, bytes: nameBytes },
      { target: jsonFile, bytes: jsonBytes },
    ]);
  }

  /**
   * Reads a database: facesight's (`faces.npy` with `faces.names.npy` and, when present, `faces.json`,
   * whose counts and checksums are then checked), or the seed's (`*face_encoding.npy` with `*names.npy`
   * beside it, or the folder that holds them). Float64 embeddings are converted to float32.
   *
   * @throws FaceError E_INPUT when `file` cannot be read; E_DATABASE when a file of the database is
   *   missing, damaged, or disagrees with the others
   */
  static async load(file: string, options?: LoadOptions): Promise<FaceDatabase> {
    if (typeof file !== 'string' || file.length === 0) throw invalidType('a file or folder path', 'path', file);
    const o = checkOptions(options, ['threshold'], 'load(options)');
    const threshold = checkThreshold(o.threshold, 'options.threshold');
    let stat: fs.Stats;
    try {
      stat = await fs.promises.stat(file);
    } catch (cause) {
      throw new FaceError('E_INPUT', `Cannot read the face database ${file}: ${(cause as Error).message}`, { cause });
    }
    const layout = stat.isDirectory() ? await seedLayoutIn(file) : await layoutOf(file);

    const embeddingBytes = await readPart(layout.embeddings, layout);
    const nameBytes = await readPart(layout.names, layout);
    let description: Description | null = null;
    if (layout.json !== null) {
      const jsonBytes = await readOptional(layout.json);
      if (jsonBytes !== null) description = parseDescription(jsonBytes, layout.json);
    }
    // Parsed before the checksums are compared, so that a damaged file is reported for what it is.
    const embeddings = decodeNpy(embeddingBytes, layout.embeddings);
    const names = decodeNpy(nameBytes, layout.names);
    if (description) {
      for (const [part, bytes, where] of [['embeddings', embeddingBytes, layout.embeddings], ['names', nameBytes, layout.names]] as const) {
        if (sha256(bytes) !== description.sha256[part]) {
          throw new FaceError(
            'E_DATABASE',
            `${where} does not match the SHA-256 recorded in ${layout.json}: the file was changed after the database was saved, or a save was interrupted`,
          );
        }
      }
    }

    // Embeddings: [N, dim] floats; np.save([]) of an empty seed database writes a float64 (0,) array.
    if (embeddings.dtype === 'unicode') throw new FaceError('E_DATABASE', `${layout.embeddings} holds strings, not embeddings (float32 or float64)`);
    let count: number;
    let dim: number | null;
    if (embeddings.shape.length === 2) {
      [count, dim] = embeddings.shape as [number, number];
      if (dim === 0) {
        if (count > 0) throw new FaceError('E_DATABASE', `${layout.embeddings} holds ${count} embeddings of length 0`);
        dim = null;
      }
    } else if (embeddings.shape[0] === 0) {
      [count, dim] = [0, null];
    } else {
      throw new FaceError('E_DATABASE', `${layout.embeddings} holds a 1-D array of ${embeddings.shape[0]} values; expected a 2-D array [entries, embedding length]`);
    }
    const data = embeddings.dtype === 'float32' ? embeddings.data : Float32Array.from(embeddings.data);
    const bad = firstNonFinite(data);
    if (bad >= 0) {
      const row = Math.floor(bad / (dim ?? 1));
      throw new FaceError('E_DATABASE', `${layout.embeddings} holds ${data[bad]} in embedding ${row} (value ${bad - row * (dim ?? 1)}${embeddings.dtype === 'float64' ? ', after conversion to float32' : ''})`);
    }

    let nameList: string[];
    if (names.dtype === 'unicode' && names.shape.length === 1) nameList = names.data;
    else if (names.shape.length === 1 && names.shape[0] === 0) nameList = [];
    else throw new FaceError('E_DATABASE', `${layout.names} holds ${names.dtype === 'unicode' ? 'a 2-D array of strings' : `${names.dtype} numbers`}; expected a 1-D array of names ('<U…')`);
    const nul = nameList.findIndex((n) => n.includes('\0'));
    if (nul >= 0) throw new FaceError('E_DATABASE', `${layout.names} holds a name with a NUL character (entry ${nul})`);

    if (nameList.length !== count) {
      throw new FaceError(
        'E_DATABASE',
        `${layout.names} holds ${nameList.length} names but ${layout.embeddings} holds ${count} embeddings` +
          (layout.seed ? " (the seed's encode_face_dataset keeps the names of images in which it found no face; enrol the folder again with facesight)" : ''),
      );
    }
    if (description) {
      if (description.count !== count || description.dim !== dim) {
        throw new FaceError('E_DATABASE', `${layout.json} describes ${description.count} embeddings of length ${description.dim} but ${layout.embeddings} holds ${count} of length ${dim}`);
      }
    }

    // Fields set directly: the values were checked above, and a file's problems must stay E_DATABASE.
    const database = new FaceDatabase();
    database.#threshold = threshold ?? description?.threshold ?? null;
    database.#embedder = description?.embedder ?? null;
    database.#dim = dim;
    database.#data = data;
    database.#names = nameList;
    database.#size = count;
    return database;
  }
}

// ---------------------------------------------------------------------------------------------------
// Enrolment helpers

function checkExtensions(value: unknown): Set<string> {
  if (value === undefined) return new Set(DEFAULT_EXTENSIONS);
  if (!Array.isArray(value) || value.length === 0) throw invalidType('a non-empty array of file extensions', 'options.extensions', value);
  return new Set(
    value.map((e, k) => {
      if (typeof e !== 'string' || !/^\.?[^./\\]+$/.test(e)) throw invalidType("a file extension such as '.jpg'", `options.extensions[${k}]`, e);
      return (e.startsWith('.') ? e : `.${e}`).toLowerCase();
    }),
  );
}

interface ImageEntry {
  file: string;
  name: string;
  /** For sorting: the path below dir with '/' separators. */
  key: string;
}

async function readFolder(dir: string): Promise<fs.Dirent[]> {
  try {
    return await fs.promises.readdir(dir, { withFileTypes: true });
  } catch (cause) {
    throw new FaceError('E_INPUT', `Cannot read the face folder ${dir}: ${(cause as Error).message}`, { cause });
  }
}

/** 'file' | 'dir' | 'other', following symbolic links (a broken link counts as a file, to be reported). */
async function kindOf(entry: fs.Dirent, full: string): Promise<'file' | 'dir' | 'other'> {
  if (entry.isFile()) return 'file';
  if (entry.isDirectory()) return 'dir';
  if (!entry.isSymbolicLink()) return 'other';
  try {
    const stat = await fs.promises.stat(full);
    return stat.isDirectory() ? 'dir' : stat.isFile() ? 'file' : 'other';
  } catch {
    return 'file';
  }
}

async function listImages(dir: string, extensions: Set<string>): Promise<ImageEntry[]> {
  const images: ImageEntry[] = [];
  const isImage = (name: string) => !name.startsWith('.') && extensions.has(path.extname(name).toLowerCase());
  for (const entry of await readFolder(dir)) {
    if (entry.name.startsWith('.')) continue;
    const full = path.join(dir, entry.name);
    const kind = await kindOf(entry, full);
    if (kind === 'dir') {
      for (const inner of await readFolder(full)) {
        const file = path.join(full, inner.name);
        if (isImage(inner.name) && (await kindOf(inner, file)) === 'file') images.push({ file, name: entry.name, key: `${entry.name}/${inner.name}` });
      }
    } else if (kind === 'file' && isImage(entry.name)) {
      images.push({ file: full, name: nameFromFile(entry.name), key: entry.name });
    }
  }
  return images.sort((a, b) => compareStrings(a.key, b.key));
}

type Outcome = { faces: readonly EmbeddedFace[] } | { error: string };

/** Errors that concern one image (unreadable, undecodable, no face), as opposed to the engine. */
function imageError(error: unknown): FaceError | null {
  return error instanceof FaceError && (error.code === 'E_INPUT' || error.code === 'E_NO_FACE') ? error : null;
}

async function embedOnce(engine: FaceEmbedder, files: string[]): Promise<readonly (readonly EmbeddedFace[])[]> {
  const lists = await engine.embed(files);
  if (!Array.isArray(lists) || lists.length !== files.length || !lists.every((l) => Array.isArray(l))) {
    throw new FaceError('E_INTERNAL', `engine.embed returned ${describeValue(lists)} for ${files.length} images (expected one list of faces per image)`);
  }
  return lists;
}

async function embedBatch(engine: FaceEmbedder, files: string[]): Promise<Outcome[]> {
  try {
    return (await embedOnce(engine, files)).map((faces) => ({ faces }));
  } catch (error) {
    // Only an image's own error is worth a retry; the engine's (disposed, native failure, bug) is not.
    const own = imageError(error);
    if (!own) throw error;
    if (files.length === 1) return [own.code === 'E_NO_FACE' ? { faces: [] } : { error: own.message }];
  }
  // One image of the batch spoiled it: again one by one, so that the others are enrolled.
  const outcomes: Outcome[] = [];
  for (const file of files) outcomes.push((await embedBatch(engine, [file]))[0]);
  return outcomes;
}

// ---------------------------------------------------------------------------------------------------
// Files

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

function ourFiles(file: string): { embeddings: string; names: string; json: string } {
  const stem = file.replace(/\.(npy|json)$/i, '');
  return { embeddings: `${stem}.npy`, names: `${stem}.names.npy`, json: `${stem}.json` };
}

interface Layout {
  embeddings: string;
  names: string;
  json: string | null;
  seed: boolean;
  /** What the caller asked for, for messages. */
  given: string;
}

async function exists(file: string): Promise<boolean> {
  try {
    await fs.promises.access(file);
    return true;
  } catch {
    return false;
  }
}

async function layoutOf(file: string): Promise<Layout> {
  if (!/\.(npy|json)$/i.test(file)) throw invalidRange("a face database's .npy or .json file, or the folder of the seed's files", 'path', file);
  const ours = ourFiles(file);
  if (/\.json$/i.test(file) || !file.endsWith(SEED_SUFFIX) || (await exists(ours.names))) {
    return { ...ours, seed: false, given: file };
  }
  return { embeddings: file, names: `${file.slice(0, -SEED_SUFFIX.length)}names.npy`, json: null, seed: true, given: file };
}

async function seedLayoutIn(dir: string): Promise<Layout> {
  let entries: string[];
  try {
    entries = await fs.promises.readdir(dir);
  } catch (cause) {
    throw new FaceError('E_INPUT', `Cannot read the face database folder ${dir}: ${(cause as Error).message}`, { cause });
  }
  const candidates = entries.filter((e) => e.endsWith(SEED_SUFFIX)).sort(compareStrings);
  if (candidates.length === 0) {
    throw new FaceError('E_DATABASE', `${dir} holds no face database: expected a *${SEED_SUFFIX} file with *names.npy beside it (the seed's layout), or pass the .npy file of a facesight database`);
  }
  if (candidates.length > 1) {
    throw new FaceError('E_INPUT', `${dir} holds several face databases (${candidates.join(', ')}): pass the path of one of them`);
  }
  return layoutOf(path.join(dir, candidates[0]));
}

async function readOptional(file: string): Promise<Uint8Array | null> {
  try {
    const handle = await fs.promises.open(file, 'r');
    try {
      const { size } = await handle.stat();
      if (size > MAX_JSON_BYTES) throw new FaceError('E_DATABASE', `${file} is ${size} bytes long; a face database description is at most ${MAX_JSON_BYTES}`);
      return await handle.readFile();
    } finally {
      await handle.close();
    }
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    if (error instanceof FaceError) throw error;
    throw new FaceError('E_DATABASE', `Cannot read ${file}: ${(error as Error).message}`, { cause: error });
  }
}

async function readPart(file: string, layout: Layout): Promise<Uint8Array> {
  try {
    return await fs.promises.readFile(file);
  } catch (cause) {
    if (file === layout.given) throw new FaceError('E_INPUT', `Cannot read the face database ${file}: ${(cause as Error).message}`, { cause });
    const missing = (cause as NodeJS.ErrnoException).code === 'ENOENT';
    throw new FaceError(
      'E_DATABASE',
      missing ? `${file} is missing: the face database ${layout.given} keeps its ${file === layout.names ? 'names' : 'embeddings'} there` : `Cannot read ${file}: ${(cause as Error).message}`,
      { cause },
    );
  }
}

interface Description {
  embedder: string | null;
  dim: number | null;
  count: number;
  threshold: number | null;
  sha256: { embeddings: string; names: string };
}

function parseDescription(bytes: Uint8Array, file: string): Description {
  const bad = (problem: string) => new FaceError('E_DATABASE', `${file} is not a valid face database description: ${problem}`);
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (cause) {
    throw new FaceError('E_DATABASE', `${file} is not a valid face database description: ${(cause as Error).message}`, { cause });
  }
  if (!isPlainObject(value)) throw bad('not a JSON object');
  if (value.format !== FORMAT) throw bad(`format is ${describeValue(value.format)}, not '${FORMAT}'`);
  if (typeof value.version !== 'number' || !Number.isInteger(value.version) || value.version < 1) throw bad(`version is ${describeValue(value.version)}`);
  if (value.version > VERSION) throw new FaceError('E_DATABASE', `${file} was written by a newer facesight (format version ${value.version}; this one reads version ${VERSION})`);
  const { embedder, dim, count, threshold, sha256: sums } = value;
  if (embedder !== null && typeof embedder !== 'string') throw bad(`embedder is ${describeValue(embedder)}`);
  if (dim !== null && !(Number.isSafeInteger(dim) && (dim as number) > 0)) throw bad(`dim is ${describeValue(dim)}`);
  if (!(Number.isSafeInteger(count) && (count as number) >= 0)) throw bad(`count is ${describeValue(count)}`);
  if (threshold !== undefined && threshold !== null && !(typeof threshold === 'number' && Number.isFinite(threshold) && threshold >= 0)) throw bad(`threshold is ${describeValue(threshold)}`);
  const hex = (v: unknown) => typeof v === 'string' && /^[0-9a-f]{64}$/.test(v);
  if (!isPlainObject(sums) || !hex(sums.embeddings) || !hex(sums.names)) throw bad('sha256 is not { embeddings, names } as hex digests');
  return {
    embedder: embedder as string | null,
    dim: dim as number | null,
    count: count as number,
    threshold: (threshold as number | null | undefined) ?? null,
    sha256: { embeddings: sums.embeddings as string, names: sums.names as string },
  };
}

/**
 * Writes each part to a temporary file beside its target (fsynced), then renames them over the targets
 * in order. See FaceDatabase.save for what an interruption leaves behind.
 */
async function writeTogether(file: string, parts: { target: string; bytes: Uint8Array }[]): Promise<void> {
  const temps: string[] = [];
  let renamed = 0;
  try {
    for (const { target, bytes } of parts) {
      const temp = `${target}.${process.pid}-${randomBytes(6).toString('hex')}.tmp`;
      const handle = await fs.promises.open(temp, 'wx');
      temps.push(temp);
      try {
        await handle.writeFile(bytes);
        await handle.sync();
      } finally {
        await handle.close();
      }
    }
    for (let k = 0; k < parts.length; k++) {
      await fs.promises.rename(temps[k], parts[k].target);
      renamed++;
    }
  } catch (cause) {
    await Promise.all(temps.slice(renamed).map((t) => fs.promises.rm(t, { force: true }).catch(() => undefined)));
    const state =
      renamed === 0
        ? 'the previous database there, if any, is unchanged'
        : `only ${parts.slice(0, renamed).map((p) => path.basename(p.target)).join(', ')} were replaced, so the database there will not load until it is saved again`;
    throw new FaceError('E_INPUT', `Cannot save the face database ${file}: ${(cause as Error).message} (${state})`, { cause });
  }
  // Make the renames themselves durable (not possible on every platform: best effort).
  try {
    const folder = await fs.promises.open(path.dirname(parts[0].target), 'r');
    try {
      await folder.sync();
    } finally {
      await folder.close();
    }
  } catch {
    // Windows cannot open or fsync a folder.
  }
}
