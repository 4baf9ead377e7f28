// Times the page against the native CLI on the same post (not run in CI):
//   node web/measure.mjs [--backend cpu|webgpu|auto] [--rounds 3] [--query MENTALQLM_SIMD=0]
//   (--query MENTALQLM_THREADS=1: the one-thread module where the page would run threads)
// Serves web/ (models/ and classifiers/ mounted), opens a fresh headless Chromium profile,
// lets the first visit load the default model, then classifies a 240-token post --rounds
// times. The CLI classifies the same post and a 2-word one; the difference of their wall
// times (median) is its time for the post without loading. Prints one JSON object.
// Needs web/pkg (web/build.sh), the release CLI, models/, and tests/browser's node_modules.

import { execFileSync } from 'node:child_process';
import { existsSync, statSync, readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cpus } from 'node:os';
import { serve } from './serve.mjs';
import { launchChromium } from '../tests/browser/launch.mjs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const arg = (name, fallback) => { const i = process.argv.indexOf(name); return i > 0 ? process.argv[i + 1] : fallback; };
const backend = arg('--backend', 'cpu');
const rounds = Number(arg('--rounds', 3));
const query = arg('--query', '');
const TARGET = process.env.CARGO_TARGET_DIR || join(process.env.HOME, '.cache/mentalqlm/target');
const CLI = process.env.MENTALQLM_BIN || join(TARGET, 'release/mentalqlm');
const POST = Array(10).fill('I have not slept properly in weeks and nothing feels worth doing anymore, my friends stopped calling and work is a blur.').join(' ');
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

function cliMs(text) {
  const started = process.hrtime.bigint();
  execFileSync(CLI, ['classify', '--device', 'cpu', '--task', 'DR', '--json', '--', text], { stdio: ['ignore', 'pipe', 'pipe'] });
  return Number(process.hrtime.bigint() - started) / 1e6;
}

const site = await serve({ root: join(ROOT, 'web'), mounts: { '/models/': join(ROOT, 'models'), '/classifiers/': join(ROOT, 'classifiers') } });
const browser = await launchChromium();
const out = { backend, query, machine: `${cpus()[0].model}, ${cpus().length} CPUs` };
try {
  const context = await browser.newContext({ serviceWorkers: 'block' });
  const page = await context.newPage();
  const opened = Date.now();
  await page.goto(`${site.url}?backend=${backend}&${query}`);
  await page.waitForFunction(() => document.body.dataset.loaded || document.body.dataset.error, null, { timeout: 900_000 });
  const error = await page.evaluate(() => document.body.dataset.error);
  if (error) throw new Error(error);
  out.first_visit_ms = Date.now() - opened;
  out.build_ms = Number(await page.evaluate(() => document.body.dataset.loadMs));
  out.page_backend = await page.evaluate(() => document.body.dataset.backend);
  out.classify_ms = [];
  for (let i = 0; i < rounds; i++) {
    const before = Number(await page.evaluate(() => document.body.dataset.results || 0));
    await page.fill('#text', POST);
    await page.click('#classify');
    await page.waitForFunction((n) => Number(document.body.dataset.results || 0) > n || document.body.dataset.error, before, { timeout: 900_000 });
    out.classify_ms.push(Math.round(JSON.parse(await page.getAttribute('#result', 'data-json')).ms));
  }
  await context.close();
} finally {
  await browser.close();
  site.server.close();
}
const long = [];
const short = [];
for (let i = 0; i < rounds; i++) { long.push(cliMs(POST)); short.push(cliMs('hello there')); }
out.cli_post_ms = Math.round(median(long) - median(short));
out.page_classify_median_ms = median(out.classify_ms);
out.page_over_cli = Number((out.page_classify_median_ms / out.cli_post_ms).toFixed(2));
const wasm = join(ROOT, 'web/pkg/mentalqlm_web_bg.wasm');
out.wasm_bytes = statSync(wasm).size;
out.wasm_gzip_bytes = gzipSync(readFileSync(wasm), { level: 9 }).length;
// The threaded module (web/pkg-threads), which the CPU backend runs where the page is isolated.
const threaded = join(ROOT, 'web/pkg-threads/mentalqlm_web_bg.wasm');
if (existsSync(threaded)) {
  out.wasm_threads_bytes = statSync(threaded).size;
  out.wasm_threads_gzip_bytes = gzipSync(readFileSync(threaded), { level: 9 }).length;
}
console.log(JSON.stringify(out));
