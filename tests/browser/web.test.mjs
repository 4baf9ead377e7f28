// End-to-end tests of the web page in headless Chromium (Debian's /usr/bin/chromium, driven
// by playwright-core): a model is picked through the page's own file input, texts are
// classified on WebGPU (SwiftShader without a GPU) and on the CPU fallback, and the labels
// and probabilities must equal the native CLI's on the same inputs within 1e-3.
//
// Needs web/pkg (web/build.sh) and the release CLI (scripts/test.sh builds both).
// Screenshots and timings go to reports/web/.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cpus } from 'node:os';
import { launchChromium } from './launch.mjs';
import { serve } from '../../web/serve.mjs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const FIXTURES = join(ROOT, 'tests/fixtures');
const TINY = join(FIXTURES, 'tiny/qwen2');
const TINY_FILES = ['config.json', 'model.safetensors', 'tokenizer.json'].map((f) => join(TINY, f));
const ADAPTER = join(FIXTURES, 'lora/qwen2-adapter');
// A tiny random BART laid out as MentalBART's folder (tests/scripts/gen_seq2seq_fixtures.py).
const BART = join(FIXTURES, 'tiny/bart');
const BART_FILES = ['config.json', 'generation_config.json', 'model.safetensors', 'vocab.json', 'merges.txt'].map((f) => join(BART, f));
const DEFAULT_MODEL = join(ROOT, 'models/SmolLM2-135M-Instruct.Q4_1.gguf');
const REPORTS = join(ROOT, 'reports/web');
const TARGET = process.env.CARGO_TARGET_DIR || join(process.env.HOME, '.cache/mentalqlm/target');
const CLI = process.env.MENTALQLM_BIN || join(TARGET, 'release/mentalqlm');
const TOLERANCE = 1e-3;

// Texts and tasks compared with the CLI: a binary task, the 9-class SAD, the 4-class
// DEP-SEVERITY, and non-ASCII text.
const CASES = [
  { task: 'DR', text: 'I have not slept properly in weeks and nothing feels worth doing anymore.' },
  { task: 'SAD', text: 'My landlord raised the rent again and I lost my second job on Friday.' },
  { task: 'DEP-SEVERITY', text: 'Some days are fine, but most mornings I can barely get out of bed. ¿Por qué?' },
];

let site;
let browser;
const timings = {};

function native(task, text, { model = TINY, adapter = null, classifier = false } = {}) {
  // The page fetches the shipped classifiers and uses those made for its model (the default
  // one); with the tiny models it scores the label sentences' likelihood, so the CLI is asked
  // for the same there.
  const args = ['classify', '--model', model, '--task', task, '--json', '--device', 'cpu'];
  if (!classifier) args.push('--no-classifier');
  if (adapter) args.push('--adapter', adapter);
  args.push('--', text);
  const out = execFileSync(CLI, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  const line = out.trim().split('\n').pop();
  const r = JSON.parse(line);
  // The CLI's JSON object has its keys sorted; compare by name.
  return { label: r.label, byName: r.probabilities };
}

before(async () => {
  assert.ok(existsSync(join(ROOT, 'web/pkg/mentalqlm_web_bg.wasm')), 'web/pkg is missing: run web/build.sh');
  assert.ok(existsSync(CLI), `${CLI} is missing: build the CLI (cargo build --release)`);
  mkdirSync(REPORTS, { recursive: true });
  site = await serve({ root: join(ROOT, 'web'), mounts: { '/fixtures/': FIXTURES, '/classifiers/': join(ROOT, 'classifiers'), '/models/': join(ROOT, 'models') } });
  browser = await launchChromium();
});

after(async () => {
  writeFileSync(join(REPORTS, 'timings.json'), `${JSON.stringify(timings, null, 2)}\n`);
  console.log('browser timings:', JSON.stringify(timings));
  await browser?.close();
  site?.server.close();
});

// A fresh profile per test (no saved files), every request recorded, and any request to
// another origin refused and remembered.
// `withoutSubgroups` serves a worker.js that first strips `subgroups` from every device
// request, which is what the runtime sees on an adapter without that feature.
// `at`: another site than the shared one (its URL).
async function openPage(query, { withoutSubgroups = false, initScript = null, at = null } = {}) {
  // No service worker: it would answer the page's requests before the routes saw them.
  const context = await browser.newContext({ serviceWorkers: 'block' });
  const requests = [];
  const foreign = [];
  const origin = new URL(at ?? site.url).origin;
  await context.route('**/*', async (route) => {
    const url = route.request().url();
    requests.push(url);
    if (new URL(url).origin !== origin) { foreign.push(url); return route.abort(); }
    if (withoutSubgroups && new URL(url).pathname === '/worker.js') {
      const response = await route.fetch();
      return route.fulfill({ response, body: STRIP_SUBGROUPS + (await response.text()) });
    }
    return route.continue();
  });
  if (initScript) await context.addInitScript(initScript);
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  await page.goto(`${at ?? site.url}?${query}`);
  return { context, page, requests, foreign, errors };
}

async function waitBackend(page) {
  await page.waitForFunction(() => document.body.dataset.backend || document.body.dataset.error, null, { timeout: 120_000 });
  const error = await page.evaluate(() => document.body.dataset.error);
  assert.equal(error, undefined, `starting the runtime failed: ${error}`);
  return page.evaluate(() => document.body.dataset.backend);
}

async function loadFiles(page, files, adapterFiles = null, timeout = 300_000) {
  await page.setInputFiles('#model-files', files);
  if (adapterFiles) await page.setInputFiles('#adapter-files', adapterFiles);
  await page.click('#load');
  await page.waitForFunction(() => document.body.dataset.loaded || document.body.dataset.error, null, { timeout });
  const error = await page.evaluate(() => document.body.dataset.error);
  assert.equal(error, undefined, `loading failed: ${error}`);
  return Number(await page.evaluate(() => document.body.dataset.loadMs));
}

// Classifies one text through the page; returns the result and the requests it caused.
async function classify(view, task, text, timeout = 300_000) {
  const { page, requests } = view;
  await page.selectOption('#task', task);
  await page.fill('#text', text);
  const before = Number(await page.evaluate(() => document.body.dataset.results || 0));
  const seenBrowser = requests.length;
  const seenServer = site.requests.length;
  await page.click('#classify');
  await page.waitForFunction((n) => Number(document.body.dataset.results || 0) > n || document.body.dataset.error, before, { timeout });
  const error = await page.evaluate(() => document.body.dataset.error);
  assert.equal(error, undefined, `classifying failed: ${error}`);
  const result = JSON.parse(await page.getAttribute('#result', 'data-json'));
  return { result, browserRequests: requests.slice(seenBrowser), serverRequests: site.requests.slice(seenServer) };
}

function assertSame(got, want, what) {
  assert.deepEqual([...got.labels].sort(), Object.keys(want.byName).sort(), `${what}: label names`);
  assert.equal(got.label, want.label, `${what}: label (page ${JSON.stringify(got.probabilities)}, CLI ${JSON.stringify(want.byName)})`);
  got.labels.forEach((name, i) => {
    const p = got.probabilities[i];
    assert.ok(Math.abs(p - want.byName[name]) <= TOLERANCE, `${what}: P(${name}) page ${p} vs CLI ${want.byName[name]}`);
  });
}

const STRIP_SUBGROUPS = `if (self.GPUAdapter) {
  const requestDevice = GPUAdapter.prototype.requestDevice;
  GPUAdapter.prototype.requestDevice = function (d = {}) {
    return requestDevice.call(this, { ...d, requiredFeatures: (d.requiredFeatures ?? []).filter((f) => f !== 'subgroups') });
  };
}
`;

// Whether this browser's WebGPU can run Burn's kernels (see web/src/lib.rs: `subgroups`);
// `options` as openPage's.
async function webgpuUsable(options = {}) {
  const view = await openPage('backend=webgpu&autoload=0', options);
  try {
    await view.page.waitForFunction(() => document.body.dataset.backend || document.body.dataset.error, null, { timeout: 120_000 });
    const backend = await view.page.evaluate(() => document.body.dataset.backend);
    return { ok: Boolean(backend), backend, error: await view.page.evaluate(() => document.body.dataset.error) };
  } finally {
    await view.context.close();
  }
}

// Every WGSL kernel as the runtime renders it (`mentalqlm bench shaders`: each weight
// encoding, tile and row count) compiles in Chromium's own WGSL compiler, Tint, which refuses
// more than naga does: a barrier in a loop bounded by a value read from a read_write
// buffer, for one, which naga (the native test) accepts.
test('every WGSL kernel compiles in the browser', async (t) => {
  const dir = join(REPORTS, 'shaders');
  rmSync(dir, { recursive: true, force: true });
  execFileSync(CLI, ['bench', 'shaders', '--out', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
  const sources = readdirSync(dir).filter((f) => f.endsWith('.wgsl')).sort()
    .map((f) => [f, readFileSync(join(dir, f), 'utf8')]);
  for (const name of ['lora_matmul', 'lora_rows', 'lora_epilogue']) {
    assert.ok(sources.some(([f]) => f.startsWith(`${name}-`)), `${name} was not written`);
  }
  const view = await openPage('backend=cpu&autoload=0');
  try {
    const result = await view.page.evaluate(async (sources) => {
      const adapter = await navigator.gpu?.requestAdapter();
      if (!adapter) return { skip: 'no WebGPU adapter' };
      // WebGPU's default limits, which every adapter grants (8 storage buffers per stage,
      // 16 KiB of workgroup memory, 256 invocations), not the adapter's own, which CubeCL
      // asks for: the kernels must fit any WebGPU device.
      const device = await adapter.requestDevice();
      const errors = [];
      for (const [name, code] of sources) {
        device.pushErrorScope('validation');
        const module = device.createShaderModule({ code });
        for (const m of (await module.getCompilationInfo()).messages) {
          if (m.type === 'error') errors.push(`${name}:${m.lineNum}: ${m.message}`);
        }
        device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' } });
        const error = await device.popErrorScope();
        if (error) errors.push(`${name}: ${error.message}`);
      }
      return { errors, compiled: sources.length };
    }, sources);
    if (result.skip) { t.skip(result.skip); return; }
    assert.equal(result.compiled, sources.length);
    assert.deepEqual(result.errors, []);
  } finally {
    await view.context.close();
  }
});

test('WebGPU without the subgroups feature is refused with a reason, and auto falls back to the CPU', async () => {
  const refused = await webgpuUsable({ withoutSubgroups: true });
  assert.ok(!refused.ok, `WebGPU was accepted without subgroups: ${refused.backend}`);
  assert.match(refused.error ?? '', /subgroups/);
  assert.match(refused.error, /CPU backend/);
  const view = await openPage('backend=auto&autoload=0', { withoutSubgroups: true });
  try {
    const description = await waitBackend(view.page);
    assert.match(description, /^cpu .*no WebGPU: .*subgroups/);
    await loadFiles(view.page, TINY_FILES);
    const { task, text } = CASES[0];
    const { result } = await classify(view, task, text);
    assertSame(result, native(task, text), 'auto');
  } finally {
    await view.context.close();
  }
});

test('auto passes over a software WebGPU adapter for the CPU backend, as the CLI does', async (t) => {
  const probe = await webgpuUsable();
  if (!probe.ok) { t.skip(`no usable WebGPU adapter here: ${probe.error}`); return; }
  // wgpu reports SwiftShader (and llvmpipe) as a CPU device.
  if (!probe.backend.endsWith(', Cpu)')) { t.skip(`a hardware adapter: ${probe.backend}`); return; }
  const view = await openPage('backend=auto&autoload=0');
  try {
    assert.match(await waitBackend(view.page), /^cpu .*WebGPU adapter .* is a software one/);
  } finally {
    await view.context.close();
  }
});

// A page on `backend`, once it runs there; null, with the test marked skipped (not passed,
// in the summary), where the browser gives no WebGPU adapter with `subgroups` at all
// (Chromium's SwiftShader has it).
async function openBackend(t, backend) {
  if (backend === 'webgpu') {
    const probe = await webgpuUsable();
    if (!probe.ok) { t.skip(`no usable WebGPU adapter here: ${probe.error}`); return null; }
  }
  const view = await openPage(`backend=${backend}&autoload=0`);
  try {
    const description = await waitBackend(view.page);
    assert.ok(description.startsWith(backend), `asked for ${backend}, got "${description}"`);
    return view;
  } catch (e) {
    await view.context.close();
    throw e;
  }
}

for (const backend of ['webgpu', 'cpu']) {
  test(`tiny model on ${backend}: same labels and probabilities as the CLI, no request while classifying`, async (t) => {
    const view = await openBackend(t, backend);
    if (!view) return;
    try {
      timings[`tiny_${backend}_load_ms`] = await loadFiles(view.page, TINY_FILES);
      for (const { task, text } of CASES) {
        const want = native(task, text);
        const { result, browserRequests, serverRequests } = await classify(view, task, text);
        assertSame(result, want, `${backend} ${task}`);
        assert.deepEqual(browserRequests, [], `requests during classification: ${browserRequests}`);
        assert.deepEqual(serverRequests, [], 'the server saw requests during classification');
        timings[`tiny_${backend}_classify_${task}_ms`] = Math.round(result.ms);
      }
      // The bars show what the result says.
      const bars = await view.page.$$eval('#bars .bar', (rows) => rows.map((r) => [r.dataset.label, Number(r.dataset.p)]));
      assert.equal(bars.length, 4, 'DEP-SEVERITY has four bars');
      assert.ok(Math.abs(bars.reduce((s, [, p]) => s + p, 0) - 1) < 1e-6, 'the probabilities sum to 1');
      assert.match(await view.page.textContent('#notice'), /not a diagnosis/);
      // Wherever a label is shown, so is the disclaimer; the text box is labelled and not
      // spellchecked (a browser's enhanced spellcheck may send the text away).
      assert.match(await view.page.textContent('#result'), /not a diagnosis/);
      assert.deepEqual(
        await view.page.$eval('#text', (t) => [t.labels.length, t.spellcheck]),
        [1, false],
      );
      await view.page.screenshot({ path: join(REPORTS, `tiny-${backend}.png`), fullPage: true });
      assert.deepEqual(view.foreign, [], 'no request may leave the origin');
      assert.deepEqual(view.errors, [], 'no page errors');
    } finally {
      await view.context.close();
    }
  });
}

// Wasm threads: where the page is cross-origin isolated (this server's COOP/COEP headers)
// the CPU backend runs the threaded module with a pool of one thread per logical processor;
// on a site without those headers, or with MENTALQLM_THREADS=1, the one-thread module. All
// three give the CLI's probabilities.
test('the CPU backend runs on wasm threads where the page is isolated, else on one thread, with the same results', async () => {
  assert.ok(existsSync(join(ROOT, 'web/pkg-threads/mentalqlm_web_bg.wasm')), 'web/pkg-threads is missing: web/build.sh builds it (scripts/setup-rust-src.sh must succeed)');
  const cores = cpus().length;
  assert.ok(cores >= 2, `this test needs 2 logical processors to see threads, found ${cores}`);
  const plain = await serve({ root: join(ROOT, 'web'), mounts: { '/fixtures/': FIXTURES }, isolate: false });
  const runs = [
    ['isolated', 'backend=cpu&autoload=0', null, new RegExp(`^cpu \\(Burn flex, wasm\\); ${cores} threads$`), true],
    ['MENTALQLM_THREADS=1', 'backend=cpu&autoload=0&MENTALQLM_THREADS=1', null, /^cpu \(Burn flex, wasm\); one thread$/, true],
    ['not isolated', 'backend=cpu&autoload=0', plain.url, /^cpu \(Burn flex, wasm\); one thread: the page is not cross-origin isolated/, false],
  ];
  try {
    for (const [name, query, at, description, isolated] of runs) {
      const view = await openPage(query, { at });
      try {
        assert.match(await waitBackend(view.page), description, name);
        assert.equal(await view.page.evaluate(() => self.crossOriginIsolated), isolated, `${name}: crossOriginIsolated`);
        await loadFiles(view.page, TINY_FILES);
        for (const { task, text } of CASES) {
          const { result } = await classify(view, task, text);
          assertSame(result, native(task, text), `${name} ${task}`);
        }
        assert.deepEqual(view.foreign, [], `${name}: no request may leave the origin`);
        assert.deepEqual(view.errors, [], `${name}: no page errors`);
      } finally {
        await view.context.close();
      }
    }
  } finally {
    plain.server.close();
  }
});

test('a bad MENTALQLM_THREADS is refused with a message', async () => {
  const view = await openPage('backend=cpu&autoload=0&MENTALQLM_THREADS=0');
  try {
    await view.page.waitForFunction(() => document.body.dataset.backend || document.body.dataset.error, null, { timeout: 120_000 });
    assert.match(await view.page.evaluate(() => document.body.dataset.error) ?? '', /MENTALQLM_THREADS=0: expected a whole number of threads from 1 to 256/);
  } finally {
    await view.context.close();
  }
});

// MentalBART's layout: the encoder-decoder model scores each label's completion answer as
// the CLI does, and its own answer (beam search, from its generation_config.json) appears as
// the explanation. On the CPU backend only: on SwiftShader's WebGPU the same test passed
// but took 543 s (each of BART's new kernel shapes is compiled in software; 2026-12-03),
// too long for CI; `bart_webgpu` in docs/models.md.
for (const backend of ['cpu']) {
  test(`a BART folder classifies like the CLI and explains on ${backend}`, async (t) => {
    const view = await openBackend(t, backend);
    if (!view) return;
    try {
      timings[`bart_${backend}_load_ms`] = await loadFiles(view.page, BART_FILES);
      assert.match(await view.page.textContent('#model-info'), /encoder-decoder/);
      for (const { task, text } of CASES.slice(0, 2)) {
        const want = native(task, text, { model: BART });
        const { result } = await classify(view, task, text);
        assertSame(result, want, `BART ${backend} ${task}`);
        assert.equal(result.method, 'choice');
        timings[`bart_${backend}_classify_${task}_ms`] = Math.round(result.ms);
      }
      await view.page.check('#explain');
      await view.page.click('#classify');
      await view.page.waitForFunction(() => document.body.dataset.busy === '0', null, { timeout: 300_000 });
      assert.equal(await view.page.evaluate(() => document.body.dataset.error), undefined);
      assert.ok((await view.page.textContent('#explanation')).trim().length > 0, 'an explanation is shown');
      assert.match(await view.page.textContent('#result'), /not a diagnosis/);
      assert.deepEqual(view.foreign, [], 'no request may leave the origin');
      assert.deepEqual(view.errors, [], 'no page errors');
    } finally {
      await view.context.close();
    }
  });
}

// On WebGPU the adapter's layers run our WGSL LoRA kernels (shaders/), so this also checks
// that the browser's own shader compiler takes them.
for (const backend of ['cpu', 'webgpu']) {
  test(`an adapter picked beside the model gives the CLI's --adapter probabilities on ${backend}`, async (t) => {
    const view = await openBackend(t, backend);
    if (!view) return;
    try {
      await loadFiles(view.page, TINY_FILES, ['adapter_config.json', 'adapter_model.safetensors'].map((f) => join(ADAPTER, f)));
      const { task, text } = CASES[0];
      const want = native(task, text, { adapter: ADAPTER });
      const plain = native(task, text);
      assert.ok(Math.abs(want.byName.yes - plain.byName.yes) > 1e-4, 'the adapter changes the CLI result, so the check can fail');
      const { result } = await classify(view, task, text);
      assertSame(result, want, `adapter on ${backend}`);
      timings[`tiny_adapter_${backend}_classify_ms`] = Math.round(result.ms);
      assert.deepEqual(view.errors, [], 'no page errors');
    } finally {
      await view.context.close();
    }
  });
}

// Every text of the progress line, in window.progressLines (an init script).
const RECORD_PROGRESS = () => {
  window.progressLines = [];
  document.addEventListener('DOMContentLoaded', () => {
    const el = document.getElementById('progress-text');
    new MutationObserver(() => window.progressLines.push(el.textContent))
      .observe(el, { childList: true, characterData: true, subtree: true });
  });
};

test('a second visit builds the saved model from browser storage, without fetching it', async () => {
  const view = await openPage('backend=cpu&autoload=0');
  try {
    await waitBackend(view.page);
    await loadFiles(view.page, TINY_FILES);
    // The model's three files, the two files of each shipped classifier and the explainer's
    // three, when one is shipped, all fetched with it.
    const shipped = readdirSync(join(ROOT, 'classifiers'))
      .filter((t) => existsSync(join(ROOT, 'classifiers', t, 'probe.safetensors'))).length;
    const explainer = existsSync(join(ROOT, 'classifiers', 'explainer', 'explainer.json')) ? 3 : 0;
    const saved = String(TINY_FILES.length + 2 * shipped + explainer);
    await view.page.waitForFunction((n) => document.body.dataset.saved === n, saved, { timeout: 60_000 });
    const seen = site.requests.length;
    // Every progress line of the second visit.
    await view.page.addInitScript(RECORD_PROGRESS);
    await view.page.goto(`${site.url}?backend=cpu`);
    await view.page.waitForFunction(() => document.body.dataset.loaded || document.body.dataset.error, null, { timeout: 120_000 });
    assert.equal(await view.page.evaluate(() => document.body.dataset.error), undefined);
    // Reading the saved files counts bytes, as MiB (it showed file counts as MiB: "0.0 / 0.0").
    const reading = (await view.page.evaluate(() => window.progressLines))
      .filter((l) => l.startsWith('Reading saved files'));
    assert.ok(reading.length > 0, 'no progress while reading the saved files');
    const last = reading.at(-1).match(/([\d.]+) \/ ([\d.]+) MiB/);
    assert.ok(last && Number(last[2]) > 0.1 && last[1] === last[2], `progress: ${reading.at(-1)}`);
    const fetched = site.requests.slice(seen).map((r) => r.path);
    assert.ok(fetched.every((p) => !p.startsWith('/fixtures/') && !p.startsWith('/classifiers/')), `saved files were fetched again: ${fetched}`);
    const { task, text } = CASES[0];
    const { result } = await classify(view, task, text);
    assertSame(result, native(task, text), 'saved model');
  } finally {
    await view.context.close();
  }
});

// Where in the site's storage `text` is found (run in the page): every Cache API entry,
// localStorage, and any IndexedDB database or OPFS file at all (the page makes none).
async function findText(text) {
  const found = [];
  for (const name of await caches.keys()) {
    const cache = await caches.open(name);
    for (const request of await cache.keys()) {
      if ((await (await cache.match(request)).text()).includes(text)) found.push(`cache ${name}: ${request.url}`);
    }
  }
  for (let i = 0; i < localStorage.length; i++) {
    const key = localStorage.key(i);
    if (`${key}${localStorage.getItem(key)}`.includes(text)) found.push(`localStorage ${key}`);
  }
  for (const db of await indexedDB.databases()) found.push(`IndexedDB ${db.name}`);
  for await (const [name] of (await navigator.storage.getDirectory()).entries()) found.push(`OPFS ${name}`);
  return found;
}

test('a second visit with the network off starts from the offline copy and classifies', async () => {
  // No request routing here: a service worker answers the page's requests itself.
  const context = await browser.newContext();
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  try {
    await page.goto(`${site.url}?backend=cpu&autoload=0`);
    await waitBackend(page);
    await loadFiles(page, TINY_FILES);
    await page.waitForFunction(() => document.body.dataset.offlineReady === '1' && Number(document.body.dataset.saved) > 0, null, { timeout: 120_000 });
    // The storage list names the saved files with their sizes, and the app's copy (drawn
    // after both are known).
    await page.waitForFunction(() => {
      const text = document.getElementById('storage-list').textContent;
      return text.includes('model/') && text.includes('the app itself');
    }, null, { timeout: 60_000 });
    const stored = await page.textContent('#storage-list');
    assert.match(stored, /model\/model\.safetensors: [\d.]+ MiB/);
    assert.match(stored, /the app itself \(for visits without a network\): [1-9][\d.]* MiB/);
    // Each file of the app's copy carries its length (the list reads that, not the body).
    const lengths = await page.evaluate(async () => {
      const app = await caches.open('mentalqlm-app-v1');
      return Promise.all((await app.keys()).map(async (request) => {
        const response = await app.match(request);
        return [request.url, response.headers.get('x-mentalqlm-bytes'), (await response.arrayBuffer()).byteLength];
      }));
    });
    assert.ok(lengths.length >= 7, `the app's copy holds ${lengths.length} files`);
    for (const [url, header, body] of lengths) assert.equal(Number(header), body, `${url}: its recorded length`);
    await context.setOffline(true);
    const seen = site.requests.length;
    await page.goto(`${site.url}?backend=cpu`);
    await page.waitForFunction(() => document.body.dataset.loaded || document.body.dataset.error, null, { timeout: 120_000 });
    assert.equal(await page.evaluate(() => document.body.dataset.error), undefined, 'the saved model loads offline');
    // The threaded module came from the offline copy too (its isolation headers kept).
    assert.match(await page.evaluate(() => document.body.dataset.backend), /; \d+ threads$/, 'threads offline');
    const { task, text } = CASES[0];
    const { result } = await classify({ page, requests: [] }, task, text);
    assertSame(result, native(task, text), 'offline');
    assert.deepEqual(site.requests.slice(seen), [], 'nothing reached the server while offline');
    // The text left no trace in the site's storage; a planted copy in each place is found,
    // so the search is not vacuous.
    assert.deepEqual(await page.evaluate(findText, text), [], 'the text was stored');
    await page.evaluate(async (t) => {
      localStorage.setItem('planted', t);
      await (await caches.open('planted')).put('/planted', new Response(t));
      indexedDB.open('planted');
      const dir = await navigator.storage.getDirectory();
      await dir.getFileHandle('planted', { create: true });
    }, text);
    const planted = await page.evaluate(findText, text);
    assert.equal(planted.length, 4, `the planted copies: ${planted}`);
    await page.evaluate(async () => {
      localStorage.clear();
      await caches.delete('planted');
      indexedDB.deleteDatabase('planted');
      await (await navigator.storage.getDirectory()).removeEntry('planted');
    });
    // Clearing everything leaves nothing of the site in its caches.
    await page.click('#clear-all');
    await page.waitForFunction(() => document.body.dataset.note && document.body.dataset.note.startsWith('Cleared'));
    const left = await page.evaluate(async () => (await caches.keys()).filter((k) => k.startsWith('mentalqlm-')));
    assert.deepEqual(left, []);
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
  }
});

test('a same-origin URL loads a HF folder', async () => {
  const view = await openPage('backend=cpu&autoload=0');
  try {
    await waitBackend(view.page);
    await view.page.fill('#model-url', 'fixtures/tiny/qwen2/');
    await view.page.click('#load-url');
    await view.page.waitForFunction(() => document.body.dataset.loaded || document.body.dataset.error, null, { timeout: 120_000 });
    assert.equal(await view.page.evaluate(() => document.body.dataset.error), undefined);
    const { task, text } = CASES[1];
    const { result } = await classify(view, task, text);
    assertSame(result, native(task, text), 'url');
  } finally {
    await view.context.close();
  }
});

// Bad input shows a readable error on the page; the page stays usable.
const BAD = [
  {
    name: 'a corrupt .gguf',
    files: [{ name: 'broken.gguf', mimeType: 'application/octet-stream', buffer: Buffer.from('GGUF\u0003\u0000\u0000\u0000 this is not a model') }],
    expect: /broken\.gguf/,
  },
  {
    name: 'a truncated model.safetensors',
    files: [
      ...['config.json', 'tokenizer.json'].map((f) => ({ name: f, mimeType: 'application/json', buffer: readFileSync(join(TINY, f)) })),
      { name: 'model.safetensors', mimeType: 'application/octet-stream', buffer: readFileSync(join(TINY, 'model.safetensors')).subarray(0, 4000) },
    ],
    expect: /model\.safetensors/,
  },
  {
    name: 'a tokenizer that does not fit the model',
    files: ['config.json', 'model.safetensors', 'tokenizer.json'].map((f) => join(FIXTURES, 'tiny/qwen2-vocab-mismatch', f)),
    expect: /vocab|tokenizer/i,
  },
  {
    name: 'files that are not a model',
    files: [join(TINY, 'tokenizer.json')],
    expect: /config\.json/,
  },
];

for (const bad of BAD) {
  test(`${bad.name} shows a readable error`, async () => {
    const view = await openPage('backend=cpu&autoload=0');
    try {
      await waitBackend(view.page);
      await view.page.setInputFiles('#model-files', bad.files);
      await view.page.click('#load');
      await view.page.waitForFunction(() => document.body.dataset.error || document.body.dataset.loaded, null, { timeout: 60_000 });
      const shown = await view.page.textContent('#error');
      assert.ok(await view.page.isVisible('#error'), 'the error is visible');
      assert.match(shown, bad.expect);
      assert.doesNotMatch(shown, /unreachable|RuntimeError|undefined/, `a raw error leaked: ${shown}`);
      assert.equal(await view.page.evaluate(() => document.body.dataset.loaded), undefined);
      assert.deepEqual(view.errors, [], 'no unhandled page errors and no panics');
      // Still usable: the good files load afterwards.
      await view.page.evaluate(() => { delete document.body.dataset.error; });
      await loadFiles(view.page, TINY_FILES);
    } finally {
      await view.context.close();
    }
  });
}

test('an empty text is refused with a message, not sent', async () => {
  const view = await openPage('backend=cpu&autoload=0');
  try {
    await waitBackend(view.page);
    await loadFiles(view.page, TINY_FILES);
    await view.page.fill('#text', '   ');
    await view.page.click('#classify');
    assert.match(await view.page.textContent('#error'), /empty/);
    assert.equal(await view.page.evaluate(() => document.body.dataset.results), undefined);
  } finally {
    await view.context.close();
  }
});

test('a first visit loads the default model by itself and classifies like the CLI', async () => {
  assert.ok(existsSync(DEFAULT_MODEL), `${DEFAULT_MODEL} is missing: run scripts/setup-model.sh`);
  const backend = process.env.MENTALQLM_WEB_DEFAULT_BACKEND || 'auto';
  // No autoload=0 and no file picked: the page fetches the site's default model itself.
  const view = await openPage(`backend=${backend}&max_new_tokens=8`, { initScript: RECORD_PROGRESS });
  try {
    await waitBackend(view.page);
    await view.page.waitForFunction(() => document.body.dataset.loaded || document.body.dataset.error, null, { timeout: 600_000 });
    assert.equal(await view.page.evaluate(() => document.body.dataset.error), undefined, 'the default model loads');
    timings[`smollm2_${backend}_load_ms`] = Number(await view.page.evaluate(() => document.body.dataset.loadMs));
    assert.ok(site.requests.some((r) => r.path === '/models/SmolLM2-135M-Instruct.Q4_1.gguf' && r.method === 'GET'), 'the default model was fetched');
    // One progress for the whole download, in bytes, against a total known from the start:
    // the model and every shipped file (JSON comes gzipped, so the total may grow a little).
    const lines = (await view.page.evaluate(() => window.progressLines))
      .map((l) => l.match(/^Downloading the model and its classifiers — ([\d.]+) \/ ([\d.]+) MiB$/))
      .filter(Boolean).map((m) => [Number(m[1]), Number(m[2])]);
    assert.ok(lines.length > 2, 'no byte progress while downloading');
    const binaries = [DEFAULT_MODEL, ...readdirSync(join(ROOT, 'classifiers')).flatMap((t) =>
      ['probe.safetensors', 'adapter_model.safetensors'].map((f) => join(ROOT, 'classifiers', t, f)))]
      .filter((f) => existsSync(f)).reduce((n, f) => n + statSync(f).size, 0) / 2 ** 20;
    assert.ok(lines[0][1] >= binaries - 0.1, `the first total ${lines[0][1]} MiB misses files (${binaries.toFixed(1)} MiB of weights)`);
    assert.ok(lines.at(-1)[1] - lines[0][1] < 1, `the total grew from ${lines[0][1]} to ${lines.at(-1)[1]} MiB`);
    assert.equal(lines.at(-1)[0], lines.at(-1)[1], 'the download ends at its total');
    // The model is asked for its size once (the first visit's check feeds the plan).
    const heads = site.requests.filter((r) => r.path === '/models/SmolLM2-135M-Instruct.Q4_1.gguf' && r.method === 'HEAD');
    assert.equal(heads.length, 1, `HEADs of the model: ${heads.length}`);
    // Then the build has its own progress, in order, up to 100%: the embedding table, 30
    // layers and the head, each a step (a percentage that never goes back).
    const build = (await view.page.evaluate(() => window.progressLines))
      .map((l) => l.match(/^Building the model — (\d+)%$/)).filter(Boolean).map((m) => Number(m[1]));
    assert.ok(build.length >= 2, `build progress: ${build}`);
    assert.equal(build.at(-1), 100, `build progress: ${build}`);
    assert.ok(build.every((p, i) => i === 0 || p >= build[i - 1]), `build progress goes back: ${build}`);
    const { task, text } = CASES[0];
    const { result, browserRequests } = await classify(view, task, text, 600_000);
    timings[`smollm2_${backend}_classify_ms`] = Math.round(result.ms);
    assert.deepEqual(browserRequests, []);
    // The shipped DR classifier was fetched with the model and is used, as by the CLI.
    assert.equal(result.method, 'probe', 'the shipped classifier scores the default model');
    assert.match(await view.page.textContent('#model-info'), /trained classifiers: .*DR/);
    // The classifier in use and its test F1, in a sentence (the shipped file's own figure).
    const f1 = JSON.parse(readFileSync(join(ROOT, 'classifiers', task, 'classifier.json'), 'utf8')).metrics.test_weighted_f1;
    assert.equal(await view.page.textContent('#scorer'),
      `This label comes from the trained ${task} classifier shipped for this model, which scored a weighted F1 of ${(100 * f1).toFixed(1)} out of 100 on the ${task} test set.`);
    assertSame(result, native(task, text, { model: DEFAULT_MODEL, classifier: true }), 'default model');
    await view.page.screenshot({ path: join(REPORTS, 'smollm2.png'), fullPage: true });
    timings.smollm2_backend = await view.page.evaluate(() => document.body.dataset.backend);
  } finally {
    await view.context.close();
  }
});
