/**
 * `facesight detect IMAGES…`: the faces in each image (box, score, landmarks), as a table or JSON,
 * optionally drawn on the images.
 */
import type { FaceError } from '../errors';
import { annotateImage } from '../pipeline/annotate';
import type { DetectedFace } from '../pipeline/face-engine';
import { EXIT_FAILURE, EXIT_OK, table, type Command } from './command';
import { engineOptionsFrom } from './engine-options';
import {
  ANNOTATE_OPTION,
  annotatedWhere,
  annotateTargets,
  boxText,
  createEngine,
  DETECTION_OPTION_SPECS,
  expandImages,
  faceJson,
  JSON_OPTION,
  jsonLines,
  prepareTargets,
  processImages,
  reportInputError,
} from './inputs';

export const detectCommand: Command = {
  name: 'detect',
  summary: 'find the faces in images: boxes, scores, landmarks',
  usage: ['facesight detect <image|folder>... [--json] [--annotate out.png|dir] [detection options]'],
  description:
    "Detects the faces in each image (a folder stands for its images: jpg jpeg png webp bmp tif tiff) and prints\n" +
    'a table of file, face number, box (x,y width x height, in pixels of the image as displayed) and score;\n' +
    '--json prints one entry per input: { file, width, height, faces: [{ box, score, landmarks, landmarks68 }] },\n' +
    'or { file, error: { code, message } } for an image that could not be read. An image that fails is\n' +
    'reported on stderr and the others go on; the exit code is then 1.',
  options: { json: JSON_OPTION, annotate: ANNOTATE_OPTION, ...DETECTION_OPTION_SPECS },
  async run(args, io) {
    const images = expandImages(args.positionals, 'detect');
    const targets = annotateTargets(args, images, 'detect');
    const engine = await createEngine(engineOptionsFrom(args, { embedder: false }));
    const entries: unknown[] = [];
    const rows: string[][] = [];
    const failures: FaceError[] = [];
    let faceCount = 0;
    try {
      prepareTargets(targets);
      await processImages<DetectedFace[]>(images.files, {
        engine,
        run: (frames) => engine.detect(frames),
        failures,
        entries,
        progress: { io, label: 'detect', images },
        async each(outcome) {
          const faces = outcome.result;
          faceCount += faces.length;
          entries.push({ file: outcome.file, width: outcome.frame.width, height: outcome.frame.height, faces: faces.map(faceJson) });
          if (faces.length === 0) rows.push([outcome.file, '-', 'no face', '']);
          faces.forEach((f, k) => rows.push([outcome.file, String(k + 1), boxText(f.box), f.score.toFixed(3)]));
          const target = targets?.get(outcome.file);
          if (target) await annotateImage(outcome.frame, faces, target);
        },
      });
    } finally {
      engine.dispose();
    }
    for (const error of failures) reportInputError(io, error);
    if (args.values.json) {
      io.out(jsonLines(entries));
    } else {
      if (rows.length) io.out(table([['FILE', 'FACE', 'BOX', 'SCORE'], ...rows]));
      const done = images.files.length - failures.length;
      io.out(`${faceCount} face${faceCount === 1 ? '' : 's'} in ${done} image${done === 1 ? '' : 's'}${failures.length ? `; ${failures.length} could not be read` : ''}`);
      if (targets && done) io.out(`annotated images: ${annotatedWhere(targets)}`);
    }
    return failures.length ? EXIT_FAILURE : EXIT_OK;
  },
};

