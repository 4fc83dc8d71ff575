#!/usr/bin/env node
// `npm test`: the C++ core's tests (ctest) and the tap suite, then one closing line
// "N passed, N failed, N skipped" counting both. Exits non-zero when anything failed.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const args = new Set(process.argv.slice(2));
const runNative = !args.has('--js-only');
const runJs = !args.has('--native-only');
const totals = { passed: 0, failed: 0, skipped: 0 };

function run(command, commandArgs, options = {}) {
  return new Promise((resolve) => {
    const child = spawn(command, commandArgs, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], ...options });
    let output = '';
    const forward = (stream, sink) => stream.on('data', (chunk) => { output += chunk; sink.write(chunk); });
    forward(child.stdout, process.stdout);
    forward(child.stderr, process.stderr);
    child.on('close', (code) => resolve({ code: code ?? 1, output }));
  });
}

if (runNative) {
  if (!existsSync(path.join(root, 'build', 'CTestTestfile.cmake'))) {
    const built = spawnSync(process.execPath, [path.join(root, 'scripts', 'build-native.mjs')], { cwd: root, stdio: 'inherit' });
    if (built.status !== 0) { totals.failed += 1; console.error('native build failed'); }
  }
  const { code, output } = await run('ctest', ['--test-dir', 'build', '--output-on-failure']);
  const m = output.match(/(\d+)% tests passed, (\d+) tests? failed out of (\d+)/);
  if (m) {
    const total = Number(m[3]), failed = Number(m[2]);
    totals.passed += total - failed;
    totals.failed += failed;
  } else if (code !== 0 || !/No tests were found/.test(output)) {
    totals.failed += 1;
  }
}

if (runJs) {
  const tap = path.join(root, 'node_modules', 'tap', 'dist', 'esm', 'run.mjs');
  const { code, output } = await run(process.execPath, [tap, '--reporter=tap'], { env: { ...process.env, FORCE_COLOR: '0' } });
  const summary = [...output.matchAll(/^# (\{ total: .*\})$/gm)].pop();
  if (summary) {
    const field = (name) => Number((summary[1].match(new RegExp(`${name}: (\\d+)`)) ?? [0, 0])[1]);
    totals.passed += field('pass');
    totals.failed += field('fail');
    totals.skipped += field('skip') + field('todo');
  }
  if (code !== 0 && (!summary || !/fail: [1-9]/.test(summary[1]))) totals.failed += 1;  // crashed or incomplete run
}

console.log(`\n${totals.passed} passed, ${totals.failed} failed, ${totals.skipped} skipped`);
process.exit(totals.failed > 0 ? 1 : 0);
