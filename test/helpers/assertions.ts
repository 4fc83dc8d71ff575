// Assertions shared by the test files.
import { FaceError } from '../../lib/errors';

/** A rejection that is a FaceError with this code and message (and, optionally, this class). */
export async function expectRejects(t: Tap.Test, promise: Promise<unknown>, code: string, message: RegExp, what: string, kind?: ErrorConstructor): Promise<void> {
  try {
    await promise;
    t.fail(`${what}: expected a rejection`);
  } catch (error) {
    t.ok(error instanceof FaceError, `${what}: a FaceError`);
    t.equal((error as FaceError).code, code, `${what}: code ${code}`);
    t.match((error as Error).message, message, `${what}: message`);
    if (kind) t.ok(error instanceof kind, `${what}: a ${kind.name}`);
  }
}
