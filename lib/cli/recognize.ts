/**
 * `facesight recognize IMAGES… --db PATH`: every face in each image, named from a face database
 * (`facesight encode`, or the seed's .npy files): the nearest entry's name within the threshold, else
 * 'Unknown'.
 */
import { FaceError } from '../errors';
import { annotateImage } from '../pipeline/annotate';
import { FaceDatabase } from '../pipeline/database';
import type { RecognizedFace } from '../pipeline/face-engine';
import { EXIT_FAILURE, EXIT_OK, table, UsageError, type Command } from './command';
import { ENGINE_OPTION_SPECS, engineOptionsFrom } from './engine-options';
import {
  ANNOTATE_OPTION,
  annotatedWhere,
  annotateTargets,
  boxText,
  createEngine,
  distanceJson,
  expandImages,
  faceJson,
  JSON_OPTION,
  jsonLines,
  MATCH_THRESHOLD_OPTION,
  matchThreshold,
  prepareTargets,
  processImages,
  reportInputError,
} from './inputs';

/** The label drawn for a recognised face: its name and distance, or 'Unknown'. */
export function recognizedLabel(face: RecognizedFace): string {
  return face.name === 'Unknown' || !Number.isFinite(face.distance) ? face.name : `${face.name} ${face.distance.toFixed(2)}`;
}

export const recognizeCommand: Command = {
  name: 'recognize',
  summary: 'name the faces in images from a face database',
  usage: ['facesight recognize <image|folder>... --db <faces.npy> [--match-threshold D] [--json] [--annotate out.png|dir] [model options]'],
  description:
    'Detects and embeds every face of each image and names it from the database: the nearest entry when its\n' +
    "Euclidean distance is within the threshold (--match-threshold, else the database's, else the embedder's),\n" +
    "else 'Unknown'. Prints file, face, box, score, name and distance; --json prints one entry per input:\n" +
    '{ file, width, height, faces: [{ box, score, landmarks, landmarks68, name, distance }] }, or { file, error }.\n' +
    "The database's embedder is used unless --embedder says otherwise (and must then be the same). An image that\n" +
    'fails is reported on stderr and the others go on; the exit code is then 1.',
  options: {
    db: { type: 'string', valueName: 'faces.npy', description: "the face database: facesight encode's .npy, or the seed's *_face_encoding.npy (or its folder)" },
    'match-threshold': MATCH_THRESHOLD_OPTION,
    json: JSON_OPTION,
    annotate: ANNOTATE_OPTION,
    ...ENGINE_OPTION_SPECS,
  },
  async run(args, io) {
    const dbPath = args.values.db;
    if (typeof dbPath !== 'string' || dbPath === '') throw new UsageError("missing --db <faces.npy> (see 'facesight recognize --help')");
    const threshold = matchThreshold(args);
    const images = expandImages(args.positionals, 'recognize');
    const targets = annotateTargets(args, images, 'recognize');
    const database = await FaceDatabase.load(dbPath, threshold === undefined ? undefined : { threshold });

    const options = engineOptionsFrom(args);
    if (options.embedder === undefined && database.embedder !== null) options.embedder = database.embedder;
    const engine = await createEngine(options);
    const entries: unknown[] = [];
    const rows: string[][] = [];
    const failures: FaceError[] = [];
    const counts = { faces: 0, known: 0 };
    let used: number;
    try {
      const embedder = engine.embedder!;
      if (database.embedder !== null && database.embedder !== embedder.name) {
        throw new UsageError(`the database ${dbPath} holds embeddings of '${database.embedder}', but --embedder is '${embedder.name}' (leave --embedder out to use the database's)`);
      }
      if (database.dim !== null && embedder.size > 0 && database.dim !== embedder.size) {
        throw new FaceError('E_INPUT', `the database ${dbPath} holds embeddings of length ${database.dim}, but '${embedder.name}' makes embeddings of length ${embedder.size}`);
      }
      const resolved = threshold ?? database.threshold ?? embedder.threshold;
      if (resolved === null) throw new UsageError(`no match threshold: neither the database nor '${embedder.name}' has one; pass --match-threshold`);
      used = resolved;
      if (database.size === 0) io.err(`facesight: warning: the database ${dbPath} is empty: every face is 'Unknown'`);
      prepareTargets(targets);
      await processImages<RecognizedFace[]>(images.files, {
        engine,
        run: (frames) => engine.recognize(frames, database, { threshold: used }),
        failures,
        entries,
        progress: { io, label: 'recognize', images },
        async each(outcome) {
          const faces = outcome.result;
          counts.faces += faces.length;
          counts.known += faces.filter((f) => f.name !== 'Unknown').length;
          entries.push({
            file: outcome.file,
            width: outcome.frame.width,
            height: outcome.frame.height,
            faces: faces.map((f) => ({ ...faceJson(f), name: f.name, distance: distanceJson(f.distance) })),
          });
          if (faces.length === 0) rows.push([outcome.file, '-', 'no face', '', '', '']);
          faces.forEach((f, k) => rows.push([outcome.file, String(k + 1), boxText(f.box), f.score.toFixed(3), f.name, Number.isFinite(f.distance) ? f.distance.toFixed(4) : '-']));
          const target = targets?.get(outcome.file);
          if (target) await annotateImage(outcome.frame, faces.map((f) => ({ ...f, label: recognizedLabel(f) })), target);
        },
      });
    } finally {
      engine.dispose();
    }
    for (const error of failures) reportInputError(io, error);
    if (args.values.json) {
      io.out(jsonLines(entries));
    } else {
      if (rows.length) io.out(table([['FILE', 'FACE', 'BOX', 'SCORE', 'NAME', 'DISTANCE'], ...rows]));
      const done = images.files.length - failures.length;
      io.out(
        `${counts.faces} face${counts.faces === 1 ? '' : 's'} in ${done} image${done === 1 ? '' : 's'}: ${counts.known} recognised, ${counts.faces - counts.known} unknown ` +
          `(threshold ${used}; database: ${database.size} entries, ${database.names().length} people)` +
          (failures.length ? `; ${failures.length} image${failures.length === 1 ? '' : 's'} could not be read` : ''),
      );
      if (targets && done) io.out(`annotated images: ${annotatedWhere(targets)}`);
    }
    return failures.length ? EXIT_FAILURE : EXIT_OK;
  },
};
