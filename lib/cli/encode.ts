/**
 * `facesight encode DIR --db PATH`: enrols a folder of photos (one folder per person, or the seed's
 * flat Name_1.jpg layout) into a face database and saves it.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FaceError } from '../errors';
import { FaceDatabase } from '../pipeline/database';
import { EXIT_FAILURE, EXIT_OK, table, UsageError, type Command } from './command';
import { ENGINE_OPTION_SPECS, engineOptionsFrom, Progress } from './engine-options';
import { createEngine, JSON_OPTION, jsonObject, MATCH_THRESHOLD_OPTION, matchThreshold, positionals } from './inputs';

export const encodeCommand: Command = {
  name: 'encode',
  summary: 'enrol a folder of photos into a face database',
  usage: ['facesight encode <folder> --db <faces.npy> [--match-threshold D] [--json] [model options]'],
  description:
    'Enrols every image of the folder: one folder per person (folder/Name/*.jpg), or files named Name_1.jpg,\n' +
    'Name_2.jpg (the name left of the first underscore), or both. The largest face of each image is embedded;\n' +
    'images without a face or that cannot be read are reported and skipped (the exit code is then 1 for images\n' +
    'that could not be read, 0 for images without a face). Writes <faces>.npy (embeddings, float32 [N, dim]),\n' +
    "<faces>.names.npy and <faces>.json (embedder, threshold, checksums); 'facesight recognize --db' reads them.",
  options: {
    db: { type: 'string', valueName: 'faces.npy', description: 'where to write the database (a path ending in .npy)' },
    'match-threshold': { ...MATCH_THRESHOLD_OPTION, description: "the database's same-person threshold, saved with it (default: the embedder's)" },
    json: { type: 'boolean', description: 'print the summary as JSON, with every image and what became of it' },
    ...ENGINE_OPTION_SPECS,
  },
  async run(args, io) {
    const [dir] = positionals(args, ['folder'], 'encode');
    const db = args.values.db;
    if (typeof db !== 'string' || db === '') throw new UsageError("missing --db <faces.npy> (see 'facesight encode --help')");
    if (!/\.npy$/i.test(db) || path.basename(db).length <= 4) throw new UsageError(`--db ${db}: expected a path ending in .npy`);
    const threshold = matchThreshold(args);
    const engine = await createEngine(engineOptionsFrom(args));
    let progress: Progress | undefined;
    let database: FaceDatabase;
    try {
      database = await FaceDatabase.fromDirectory(dir, engine, {
        ...(threshold === undefined ? {} : { threshold }),
        onProgress: ({ done, total }) => {
          progress ??= new Progress(io, 'encode', total);
          progress.update(done);
        },
      });
    } finally {
      progress?.finish();
      engine.dispose();
    }
    const report = database.report!;
    const images = report.enrolled.length + report.noFace.length + report.failed.length;
    for (const f of report.failed) io.err(`facesight: ${f.error.replace(/\s*\n\s*/g, ' ')}`);
    if (images === 0) throw new FaceError('E_INPUT', `No images in ${dir} (jpg jpeg png webp bmp tif tiff, in the folder or in one folder per person); nothing written`);
    if (database.size === 0) throw new FaceError('E_INPUT', `No face found in any of the ${images} images of ${dir}; nothing written`);
    try {
      fs.mkdirSync(path.dirname(path.resolve(db)), { recursive: true });
    } catch (cause) {
      throw new FaceError('E_INPUT', `Cannot create the folder of --db ${db}: ${(cause as Error).message}`, { cause });
    }
    await database.save(db);
    const stem = db.replace(/\.npy$/i, '');
    const files = [db, `${stem}.names.npy`, `${stem}.json`];
    const people = database.names();
    if (args.values.json) {
      io.out(
        jsonObject({
          db: path.resolve(db),
          files: files.map((f) => path.resolve(f)),
          embedder: database.embedder,
          threshold: database.threshold,
          images,
          people: people.length,
          entries: database.size,
          names: people,
          enrolled: report.enrolled,
          noFace: report.noFace,
          failed: report.failed.map((f) => ({ file: f.file, error: { code: 'E_INPUT', message: f.error } })),
        }),
      );
    } else {
      const list = (items: readonly string[]) => (items.length ? `  (${items.slice(0, 5).join(', ')}${items.length > 5 ? `, … ${items.length - 5} more` : ''})` : '');
      io.out(
        table([
          ['images', String(images)],
          ['people', `${people.length}${list(people)}`],
          ['entries', String(database.size)],
          ['no face', `${report.noFace.length}${list(report.noFace)}`],
          ['failed', `${report.failed.length}${list(report.failed.map((f) => f.file))}`],
          ['embedder', `${database.embedder ?? '-'}, threshold ${database.threshold ?? '-'}`],
          ['wrote', files.join(', ')],
        ]),
      );
    }
    return report.failed.length ? EXIT_FAILURE : EXIT_OK;
  },
};
