// The one setting for the evaluation data: FACESIGHT_DATA, default ../shared/data beside the repo.
// Tests that need it skip with a message when it is absent, and fail when FACESIGHT_REQUIRE_DATA=1.
import * as fs from 'node:fs';
import * as path from 'node:path';

export const repoRoot = path.resolve(__dirname, '..', '..');
export const dataDir = process.env.FACESIGHT_DATA ?? path.resolve(repoRoot, '../shared/data');
export const requireData = process.env.FACESIGHT_REQUIRE_DATA === '1';

/**
 * The absolute path of `relative` under the data folder, or undefined after skipping (or failing,
 * with FACESIGHT_REQUIRE_DATA=1) the test when it is not there.
 */
export function dataPath(t: Tap.Test, relative: string): string | undefined {
  const full = path.join(dataDir, relative);
  if (fs.existsSync(full)) return full;
  const message = `${relative} not found under ${dataDir} (set FACESIGHT_DATA to the shared data folder)`;
  if (requireData) t.fail(message);
  else t.skip(message);
  return undefined;
}
