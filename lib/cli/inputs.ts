/**
 * What the face commands (detect, recognize, verify, encode) share: image arguments (files and
 * folders), batches where one bad image does not stop the others, --annotate targets,
 * --match-threshold, the engine (option mistakes are usage errors) and the JSON / text shapes of a face.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FaceError } from '../errors';
import { DEFAULT_EXTENSIONS } from '../pipeline/database';
import { annotationFormat } from '../pipeline/annotate';
import { FaceEngine, type DetectedFace, type FaceEngineOptions } from '../pipeline/face-engine';
import { decodeImage, type Frame } from '../pipeline/image';
import { UsageError, type CliIO, type OptionSpec, type ParsedArgs } from './command';
import { ENGINE_OPTION_SPECS, Progress } from './engine-options';

/** Images per engine call. */
export const BATCH_SIZE = 8;

/** Exit code of `verify` when the two faces are not the same person. */
export const EXIT_DIFFERENT = 3;

export const JSON_OPTION: OptionSpec = { type: 'boolean', description: 'print the results as JSON: one entry per input file, each naming its file' };
export const ANNOTATE_OPTION: OptionSpec = {
  type: 'string',
  valueName: 'out.png|jpg|webp|dir',
  description: 'draw boxes, landmarks and labels: into this file (one input) or this folder, one image per input (several)',
};
export const MATCH_THRESHOLD_OPTION: OptionSpec = {
  type: 'string',
  valueName: 'distance',
  description: "same-person threshold on the embedding distance (default: the database's, else the embedder's)",
};

/** The engine options of a detection-only command (no embedder, no alignment). */
export const DETECTION_OPTION_SPECS: Readonly<Record<string, OptionSpec>> = Object.fromEntries(
  Object.entries(ENGINE_OPTION_SPECS).filter(([name]) => name !== 'embedder' && name !== 'alignment'),
);

export interface ImageList {
  /** The image files, in argument order; a folder's images sorted by name. */
  files: string[];
  /** Whether a folder was among the arguments. */
  folder: boolean;
}

const IMAGE_EXTENSIONS = new Set(DEFAULT_EXTENSIONS);

/**
 * The image files named by `args`: files as they are (a missing one is reported when read), folders
 * expanded to their image files (by extension: jpg jpeg png webp bmp tif tiff; not recursive; hidden
 * files skipped).
 *
 * @throws UsageError when there is no argument; FaceError E_INPUT for a folder that cannot be read or
 *   holds no image
 */
export function expandImages(args: readonly string[], command: string): ImageList {
  if (args.length === 0) throw new UsageError(`missing the images (files or folders) (see 'facesight ${command} --help')`);
  const files: string[] = [];
  let folder = false;
  for (const arg of args) {
    let stat: fs.Stats | undefined;
    try {
      stat = fs.statSync(arg);
    } catch {
      stat = undefined; // reported as that input's error
    }
    if (!stat?.isDirectory()) {
      files.push(arg);
      continue;
    }
    folder = true;
    let names: string[];
    try {
      names = fs.readdirSync(arg);
    } catch (cause) {
      throw new FaceError('E_INPUT', `Cannot read the folder ${arg}: ${(cause as Error).message}`, { cause });
    }
    const images = names
      .filter((n) => !n.startsWith('.') && IMAGE_EXTENSIONS.has(path.extname(n).toLowerCase()))
      .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
      .map((n) => path.join(arg, n))
      .filter((f) => {
        try {
          return fs.statSync(f).isFile();
        } catch {
          return true; // a broken link: reported when read
        }
      });
    if (images.length === 0) throw new FaceError('E_INPUT', `No images (${DEFAULT_EXTENSIONS.join(' ')}) in the folder ${arg}`);
    files.push(...images);
  }
  return { files, folder };
}

/** One input's outcome: its frame and the engine's result, or the error that concerns it alone. */
export interface ImageResult<T> {
  file: string;
  frame: Frame;
  result: T;
}

/** An error about one image (unreadable, undecodable, refused), as opposed to the engine's or a bug. */
function imageError(error: unknown): FaceError | null {
  // Not an argument error (TypeError / RangeError, code E_INPUT too): that is a bug of the command's.
  const own = error instanceof FaceError && (error as FaceError).code === 'E_INPUT' && !(error instanceof TypeError) && !(error instanceof RangeError);
  return own ? (error as FaceError) : null;
}

export interface ProcessOptions<T> {
  engine: FaceEngine;
  /** The engine call for a batch of frames: one result per frame, in order. */
  run(frames: Frame[]): Promise<T[]>;
  /** Called for each image that gave a result, in order, as soon as its batch is done (the frame is released after). */
  each(outcome: ImageResult<T>): Promise<void> | void;
  /**
   * An image that cannot be read or decoded, or that the engine refuses: its error joins `failures`
   * and `{ file, error }` joins `entries` (the command's JSON lines) at its place in the input order.
   */
  failures: FaceError[];
  entries: unknown[];
  /** A progress bar on stderr with this label, for a folder or more than 8 images. */
  progress: { io: CliIO; label: string; images: { folder: boolean; files: readonly string[] } };
  batchSize?: number;
}

/**
 * Runs `files` through the engine in batches. Each image is decoded on its own, so that one that
 * cannot be read or decoded is reported (its outcome holds the error) while the rest of its batch
 * goes on; a batch the engine rejects because of one frame is run again frame by frame. Any other
 * error (the engine's, a bug) stops everything.
 */
export async function processImages<T>(files: readonly string[], options: ProcessOptions<T>): Promise<void> {
  const batchSize = options.batchSize ?? BATCH_SIZE;
  const p = options.progress;
  const progress = (p.images.folder || p.images.files.length > 8) && new Progress(p.io, p.label, files.length);
  const failed = (file: string, error: FaceError): void => {
    options.failures.push(error);
    options.entries.push({ file, error: errorJson(error) });
  };
  try {
    for (let first = 0; first < files.length; first += batchSize) {
      const batch = files.slice(first, first + batchSize);
      const decoded = await Promise.all(
        batch.map(async (file): Promise<Frame | FaceError> => {
          try {
            return await decodeImage(file, { limitInputPixels: options.engine.limitInputPixels }, 'image');
          } catch (error) {
            const own = imageError(error);
            if (!own) throw error;
            return own;
          }
        }),
      );
      const frames = decoded.filter((d): d is Frame => !(d instanceof FaceError));
      const results = await runFrames(frames, options.run);
      let k = 0;
      for (let i = 0; i < batch.length; i++) {
        const d = decoded[i];
        if (d instanceof FaceError) {
          failed(batch[i]!, d);
          continue;
        }
        const r = results[k++]!;
        if (r instanceof FaceError) failed(batch[i]!, r);
        else await options.each({ file: batch[i]!, frame: d, result: r.value });
      }
      if (progress) progress.update(Math.min(files.length, first + batch.length));
    }
  } finally {
    if (progress) progress.finish();
  }
}

async function runFrames<T>(frames: Frame[], run: (frames: Frame[]) => Promise<T[]>): Promise<({ value: T } | FaceError)[]> {
  if (frames.length === 0) return [];
  try {
    const values = await run(frames);
    return values.map((value) => ({ value }));
  } catch (error) {
    const own = imageError(error);
    if (!own) throw error;
    if (frames.length === 1) return [own];
  }
  const outcomes: ({ value: T } | FaceError)[] = [];
  for (const frame of frames) outcomes.push(...(await runFrames([frame], run)));
  return outcomes;
}

/**
 * Where --annotate writes each input's image: the file itself for one input given as a file; else a
 * folder (created), one image per input named after it (its extension kept when it is .png, .jpg,
 * .jpeg or .webp, else .png; '-2', '-3' … added to repeated names). Undefined without --annotate.
 *
 * @throws UsageError for an unsupported extension, or a target that is one of the inputs
 */
export function annotateTargets(args: ParsedArgs, images: ImageList, command: string): Map<string, string> | undefined {
  const value = args.values.annotate;
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || value === '') throw new UsageError(`--annotate expects a file or folder (see 'facesight ${command} --help')`);
  const targets = new Map<string, string>();
  const inputs = new Set(images.files.map((f) => path.resolve(f)));
  const check = (file: string, target: string) => {
    if (inputs.has(path.resolve(target))) throw new UsageError(`--annotate ${value} would overwrite the input ${file}`);
    targets.set(file, target);
  };
  if (images.files.length === 1 && !images.folder) {
    if (!annotationFormat(value)) {
      if (fs.existsSync(value) && fs.statSync(value).isDirectory()) {
        check(images.files[0], path.join(value, outputName(images.files[0])));
        return targets;
      }
      throw new UsageError(`--annotate ${value}: expected a file name ending in .png, .jpg, .jpeg or .webp (or an existing folder)`);
    }
    check(images.files[0], value);
    return targets;
  }
  if (annotationFormat(value) && !(fs.existsSync(value) && fs.statSync(value).isDirectory())) {
    throw new UsageError(`--annotate ${value}: with ${images.files.length} images, expected a folder to write one image per input into, not a file name`);
  }
  const used = new Set<string>();
  for (const file of images.files) {
    const name = outputName(file);
    const ext = path.extname(name);
    let unique = name;
    for (let n = 2; used.has(unique.toLowerCase()); n++) unique = `${name.slice(0, name.length - ext.length)}-${n}${ext}`;
    used.add(unique.toLowerCase());
    check(file, path.join(value, unique));
  }
  return targets;
}

function outputName(file: string): string {
  const base = path.basename(file);
  return annotationFormat(base) ? base : `${path.parse(base).name}.png`;
}

/** Where --annotate wrote: the file, or the folder. */
export function annotatedWhere(targets: Map<string, string>): string {
  const all = [...targets.values()];
  if (all.length === 1) return all[0];
  const dirs = new Set(all.map((t) => path.dirname(t)));
  return dirs.size === 1 ? `${[...dirs][0]}${path.sep}` : all.join(', ');
}

/** Creates the folders the --annotate targets need. */
export function prepareTargets(targets: Map<string, string> | undefined): void {
  if (!targets) return;
  for (const dir of new Set([...targets.values()].map((t) => path.dirname(t)))) {
    try {
      fs.mkdirSync(dir, { recursive: true });
    } catch (cause) {
      throw new FaceError('E_INPUT', `Cannot create the folder ${dir} for --annotate: ${(cause as Error).message}`, { cause });
    }
  }
}

/** --match-threshold as a positive number, or undefined. */
export function matchThreshold(args: ParsedArgs): number | undefined {
  const v = args.values['match-threshold'];
  if (v === undefined) return undefined;
  const n = Number(v);
  if (typeof v !== 'string' || v.trim() === '' || !(Number.isFinite(n) && n > 0)) throw new UsageError(`--match-threshold expects a positive number (a Euclidean distance), not '${String(v)}'`);
  return n;
}

/** FaceEngine.create, with mistakes in the options (unknown model, value out of range) as usage errors. */
export async function createEngine(options: FaceEngineOptions): Promise<FaceEngine> {
  try {
    return await FaceEngine.create(options);
  } catch (error) {
    if (error instanceof FaceError && (error as FaceError).code === 'E_INPUT') throw new UsageError((error as Error).message, { cause: error });
    throw error;
  }
}

/** Exactly the positional arguments `names`, else a usage error naming what is missing or extra. */
export function positionals(args: ParsedArgs, names: readonly string[], command: string): string[] {
  const p = args.positionals;
  if (p.length < names.length) throw new UsageError(`missing ${names.slice(p.length).map((n) => `<${n}>`).join(' ')} (see 'facesight ${command} --help')`);
  if (p.length > names.length) throw new UsageError(`too many arguments: ${p.slice(names.length).map((a) => `'${a}'`).join(' ')} (see 'facesight ${command} --help')`);
  return [...p];
}

const r2 = (v: number) => Math.round(v * 100) / 100;
const r4 = (v: number) => Math.round(v * 10000) / 10000;

/** A face for --json: box and points to 0.01 px, score to 1e-4. */
export function faceJson(face: DetectedFace): Record<string, unknown> {
  const json: Record<string, unknown> = {
    box: { x: r2(face.box.x), y: r2(face.box.y), width: r2(face.box.width), height: r2(face.box.height) },
    score: r4(face.score),
    landmarks: face.landmarks.map((p) => ({ x: r2(p.x), y: r2(p.y) })),
  };
  if (face.landmarks68) json.landmarks68 = face.landmarks68.map((p) => ({ x: r2(p.x), y: r2(p.y) }));
  return json;
}

/** A distance for --json: to 1e-4; null for Infinity (an empty database). */
export function distanceJson(distance: number): number | null {
  return Number.isFinite(distance) ? r4(distance) : null;
}

export function errorJson(error: FaceError): { code: string; message: string } {
  return { code: error.code, message: error.message };
}

/** A JSON array with one entry per line: valid JSON, and one input per line to read or grep. */
export function jsonLines(entries: readonly unknown[]): string {
  return entries.length === 0 ? '[]' : `[\n${entries.map((e) => `  ${JSON.stringify(e)}`).join(',\n')}\n]`;
}

/** A JSON object with one key per line (each value on its line). */
export function jsonObject(object: Record<string, unknown>): string {
  return `{\n${Object.entries(object).map(([k, v]) => `  ${JSON.stringify(k)}: ${JSON.stringify(v)}`).join(',\n')}\n}`;
}

/** A box for the text tables: 'x,y w×h' in whole pixels. */
export function boxText(box: DetectedFace['box']): string {
  return `${Math.round(box.x)},${Math.round(box.y)} ${Math.round(box.width)}x${Math.round(box.height)}`;
}

/** One line on stderr for an input that failed. */
export function reportInputError(io: CliIO, error: FaceError): void {
  io.err(`facesight: ${error.message.replace(/\s*\n\s*/g, ' ')}`);
}
