/**
 * `facesight verify A B`: whether the largest face of each image is the same person. Exit code 0 for
 * the same person, 3 for different people, 1 when an image cannot be read or shows no face.
 */
import { FaceError } from '../errors';
import { annotateImage } from '../pipeline/annotate';
import type { Verification } from '../pipeline/face-engine';
import { decodeImage, type Frame } from '../pipeline/image';
import { EXIT_FAILURE, EXIT_OK, table, type Command } from './command';
import { ENGINE_OPTION_SPECS, engineOptionsFrom } from './engine-options';
import {
  ANNOTATE_OPTION,
  annotatedWhere,
  annotateTargets,
  boxText,
  createEngine,
  distanceJson,
  errorJson,
  EXIT_DIFFERENT,
  faceJson,
  JSON_OPTION,
  jsonObject,
  MATCH_THRESHOLD_OPTION,
  matchThreshold,
  positionals,
  prepareTargets,
} from './inputs';

export const verifyCommand: Command = {
  name: 'verify',
  summary: 'tell whether two photos show the same person (exit 0 same, 3 different)',
  usage: ['facesight verify <image-a> <image-b> [--match-threshold D] [--json] [--annotate dir] [model options]'],
  description:
    "Embeds the largest face of each image and compares them: the same person when the Euclidean distance of the\n" +
    "embeddings is at most the threshold (--match-threshold, else the embedder's). Prints the verdict, the distance\n" +
    'and the threshold; --json prints { a: { file, face }, b: { file, face }, same, distance, threshold }.\n' +
    'Exit codes: 0 the same person, 3 different people, 1 an image that cannot be read or shows no face\n' +
    '(E_NO_FACE), 2 a command-line mistake. --annotate writes both images, each face labelled, into a folder.',
  options: { 'match-threshold': MATCH_THRESHOLD_OPTION, json: JSON_OPTION, annotate: ANNOTATE_OPTION, ...ENGINE_OPTION_SPECS },
  async run(args, io) {
    const [a, b] = positionals(args, ['image-a', 'image-b'], 'verify');
    const threshold = matchThreshold(args);
    const targets = annotateTargets(args, { files: [a, b], folder: false }, 'verify');
    const engine = await createEngine(engineOptionsFrom(args));
    const fail = (error: FaceError, which?: 'a' | 'b'): number => {
      if (args.values.json) {
        const side = (k: 'a' | 'b', file: string) => (which === k ? { file, error: errorJson(error) } : { file });
        io.out(jsonObject({ a: side('a', a), b: side('b', b), error: errorJson(error) }));
      }
      io.err(`facesight: ${error.message.replace(/\s*\n\s*/g, ' ')}`);
      return EXIT_FAILURE;
    };
    let result: Verification;
    let frames: [Frame, Frame];
    try {
      const decoded: (Frame | FaceError)[] = await Promise.all(
        [a, b].map((file) =>
          decodeImage(file, { limitInputPixels: engine.limitInputPixels }, 'image').catch((error: unknown) => {
            if (error instanceof FaceError && (error as FaceError).code === 'E_INPUT') return error as FaceError;
            throw error;
          }),
        ),
      );
      const bad = decoded.findIndex((d) => d instanceof FaceError);
      if (bad >= 0) return fail(decoded[bad] as FaceError, bad === 0 ? 'a' : 'b');
      frames = decoded as [Frame, Frame];
      try {
        result = await engine.verify(frames[0], frames[1], threshold === undefined ? {} : { threshold });
      } catch (error) {
        if (!(error instanceof FaceError) || (error as FaceError).code !== 'E_NO_FACE') throw error;
        // The engine says which image ('image a', 'image b' or both): name the files.
        const message = (error as Error).message;
        const inA = /\bimage a\b/.test(message);
        const inB = /\bimage b\b/.test(message);
        const files = [inA && a, inB && b].filter(Boolean).map((f) => `'${f}'`);
        const noFace = new FaceError('E_NO_FACE', `verify: no face found in ${files.length ? files.join(' nor in ') : `'${a}' or '${b}'`}`, { cause: error });
        return fail(noFace, inA && !inB ? 'a' : inB && !inA ? 'b' : undefined);
      }
      if (targets) {
        prepareTargets(targets);
        const color = result.same ? '#00e676' : '#ff1744';
        for (const [k, file] of [a, b].entries()) {
          const label = `${k === 0 ? 'A' : 'B'}: ${result.same ? 'same' : 'different'} ${result.distance.toFixed(2)}`;
          await annotateImage(frames[k], [{ ...result.faces[k], label, color }], targets.get(file)!);
        }
      }
    } finally {
      engine.dispose();
    }
    const side = (file: string, k: 0 | 1) => ({ file, face: faceJson(result.faces[k]) });
    if (args.values.json) {
      io.out(jsonObject({ a: side(a, 0), b: side(b, 1), same: result.same, distance: distanceJson(result.distance), threshold: result.threshold }));
    } else {
      io.out(
        table([
          ['', 'FILE', 'BOX', 'SCORE'],
          ...[a, b].map((file, k) => [k === 0 ? 'a' : 'b', file, boxText(result.faces[k].box), result.faces[k].score.toFixed(3)]),
        ]),
      );
      io.out(
        result.same
          ? `same person: distance ${result.distance.toFixed(4)} <= threshold ${result.threshold}`
          : `different people: distance ${result.distance.toFixed(4)} > threshold ${result.threshold}`,
      );
      if (targets) io.out(`annotated images: ${annotatedWhere(targets)}`);
    }
    return result.same ? EXIT_OK : EXIT_DIFFERENT;
  },
};
