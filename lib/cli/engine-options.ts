/**
 * The options every face command shares (models, detection settings, alignment, threads) and the
 * FaceEngine options they make; plus a progress bar on stderr for long runs.
 */
import type { FaceEngineOptions } from '../pipeline/face-engine';
import { UsageError, type CliIO, type OptionSpec, type ParsedArgs } from './command';

export const ENGINE_OPTION_SPECS: Readonly<Record<string, OptionSpec>> = {
  detector: { type: 'string', valueName: 'name[=path]', description: "the detector (default faceapi-ssd); name=path gives its weights" },
  landmarks: { type: 'string', valueName: 'name[=path]|none', description: 'the 68-point landmark model (default: faceapi-landmarks68 when needed)' },
  embedder: { type: 'string', valueName: 'name[=path]', description: 'the embedding model (default faceapi-recognition)' },
  alignment: { type: 'string', valueName: 'similarity|eye-line|none', description: "how faces are aligned before embedding (default: the embedder's)" },
  'any-rotation': { type: 'boolean', description: 'faces may be sideways or upside down (slower landmarks)' },
  threshold: { type: 'string', valueName: '0-1', description: "detection score threshold (default: the detector's)" },
  'nms-threshold': { type: 'string', valueName: '0-1', description: "NMS IoU threshold (default: the detector's)" },
  'input-size': { type: 'string', valueName: 'N|original', description: "detector input: N×N letterboxed, or each image at its own size" },
  threads: { type: 'string', valueName: 'N', description: 'CPU threads (default: all cores)' },
};

function number(args: ParsedArgs, key: string): number | undefined {
  const v = args.values[key];
  if (v === undefined) return undefined;
  const n = Number(v);
  if (typeof v !== 'string' || v.trim() === '' || !Number.isFinite(n)) throw new UsageError(`--${key} expects a number, not '${String(v)}'`);
  return n;
}

/** FaceEngine options from the shared command-line options (values are checked by FaceEngine.create). */
export function engineOptionsFrom(args: ParsedArgs, overrides: { embedder?: false } = {}): FaceEngineOptions {
  const v = args.values;
  const options: FaceEngineOptions = {};
  if (typeof v.detector === 'string') options.detector = v.detector;
  if (typeof v.landmarks === 'string') options.landmarks = v.landmarks === 'none' ? false : v.landmarks;
  if (overrides.embedder === false) options.embedder = false;
  else if (typeof v.embedder === 'string') options.embedder = v.embedder;
  if (typeof v.alignment === 'string') options.alignment = v.alignment as FaceEngineOptions['alignment'];
  if (v['any-rotation']) options.anyRotation = true;
  const threads = number(args, 'threads');
  if (threads !== undefined) options.threads = threads;
  const detection: NonNullable<FaceEngineOptions['detection']> = {};
  const threshold = number(args, 'threshold');
  if (threshold !== undefined) detection.threshold = threshold;
  const nms = number(args, 'nms-threshold');
  if (nms !== undefined) detection.nmsThreshold = nms;
  const size = v['input-size'];
  if (typeof size === 'string') detection.inputSize = size === 'original' ? 'original' : (number(args, 'input-size') as number);
  if (Object.keys(detection).length) options.detection = detection;
  return options;
}

/**
 * A progress bar on stderr: redrawn in place on a terminal, else a line every 10 %. Call
 * `update(done)` as work completes and `finish()` at the end.
 */
export class Progress {
  readonly #io: CliIO;
  readonly #label: string;
  readonly #total: number;
  readonly #tty: boolean;
  readonly #start = Date.now();
  #lastTenth = -1;
  #lastDraw = 0;

  constructor(io: CliIO, label: string, total: number, tty = Boolean(process.stderr.isTTY) && io.env.FACESIGHT_PROGRESS !== 'lines') {
    this.#io = io;
    this.#label = label;
    this.#total = total;
    this.#tty = tty;
  }

  update(done: number): void {
    const fraction = this.#total ? done / this.#total : 1;
    const elapsed = (Date.now() - this.#start) / 1000;
    const eta = done > 0 ? (elapsed * (this.#total - done)) / done : 0;
    const text = `${this.#label} ${done}/${this.#total} (${Math.floor(fraction * 100)} %), ${elapsed.toFixed(0)} s${done < this.#total && done > 0 ? `, ${eta.toFixed(0)} s left` : ''}`;
    if (this.#tty) {
      const now = Date.now();
      if (now - this.#lastDraw < 100 && done < this.#total) return;
      this.#lastDraw = now;
      const width = 30;
      const filled = Math.round(fraction * width);
      process.stderr.write(`\r[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${text}\x1b[K`);
      return;
    }
    const tenth = Math.floor(fraction * 10);
    if (tenth > this.#lastTenth) {
      this.#lastTenth = tenth;
      this.#io.err(text);
    }
  }

  finish(): void {
    if (this.#tty) process.stderr.write('\n');
  }
}
