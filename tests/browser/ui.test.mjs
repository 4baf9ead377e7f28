// The page's behaviour around work in progress, with the tiny model on the CPU backend in
// headless Chromium. Each test failed before its fix:
// - a backend switch (or Cancel) in the middle of a job leaves the page usable;
// - a result or explanation of an earlier classification is never drawn;
// - after a failed load, Classify is disabled (the worker dropped the old model);
// - a full storage quota still says the model is loaded, with a warning;
// - files dropped while busy are refused with a message;
// - a first visit to a site without the default model gets a notice, not an error;
// - a lost WebGPU device unloads the model and says so, and a new device builds it again
//   (WebGPU, SwiftShader; skipped, and counted so, where the browser has none).
//
// Needs web/pkg (web/build.sh).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { launchChromium } from './launch.mjs';
import { serve } from '../../web/serve.mjs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const FIXTURES = join(ROOT, 'tests/fixtures');
const TINY_FILES = ['config.json', 'model.safetensors', 'tokenizer.json'].map((f) => join(FIXTURES, 'tiny/qwen2', f));
const TEXT = 'I have not slept properly in weeks and nothing feels worth doing anymore.';

let site;
let browser;

before(async () => {
  assert.ok(existsSync(join(ROOT, 'web/pkg/mentalqlm_web_bg.wasm')), 'web/pkg is missing: run web/build.sh');
  site = await serve({ root: join(ROOT, 'web'), mounts: { '/fixtures/': FIXTURES, '/classifiers/': join(ROOT, 'classifiers') } });
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  site?.server.close();
});

// A fresh profile on the CPU backend (or `backend`); `prelude` is run in the worker before
// worker.js: a string, or a function of the worker's number (1 for the page's first) giving
// one.
async function open(query = '', prelude = '', backend = 'cpu') {
  // No service worker (the offline copy has its own test in web.test.mjs).
  const context = await browser.newContext({ serviceWorkers: 'block' });
  const origin = new URL(site.url).origin;
  let workers = 0;
  await context.route('**/*', async (route) => {
    const url = new URL(route.request().url());
    if (url.origin !== origin) return route.abort();
    const code = url.pathname === '/worker.js' && (typeof prelude === 'function' ? prelude(++workers) : prelude);
    if (code) {
      const response = await route.fetch();
      return route.fulfill({ response, body: code + (await response.text()) });
    }
    return route.continue();
  });
  const page = await context.newPage();
  await page.goto(`${site.url}?backend=${backend}&${query}`);
  await page.waitForFunction(() => document.body.dataset.backend || document.body.dataset.error, null, { timeout: 120_000 });
  return { context, page };
}

const data = (page, key) => page.evaluate((k) => document.body.dataset[k], key);

async function load(page) {
  await page.setInputFiles('#model-files', TINY_FILES);
  await page.click('#load');
  await page.waitForFunction(() => document.body.dataset.loaded || document.body.dataset.error, null, { timeout: 120_000 });
  assert.equal(await data(page, 'error'), undefined, 'the tiny model loads');
}

// The worker holds every result back for 5 s: a classification that stays busy that long
// whatever the model generates.
const SLOW = `{
  const real = self.postMessage.bind(self);
  self.postMessage = (m, ...rest) => {
    if (m && m.type === 'result') setTimeout(() => real(m, ...rest), 5000);
    else real(m, ...rest);
  };
}
`;

// Starts a classification (held back by SLOW) and waits until the page is busy with it.
async function startLongJob(page) {
  await page.fill('#text', TEXT);
  await page.click('#classify');
  await page.waitForFunction(() => document.body.dataset.busy === '1');
}

test('a backend switch in the middle of a job leaves the page usable', async () => {
  const { context, page } = await open('', SLOW);
  try {
    await load(page);
    await startLongJob(page);
    await page.selectOption('#backend-select', 'auto');
    // The new worker starts, loads the saved model by itself, and the page is idle again.
    await page.waitForFunction(() => document.body.dataset.busy === '0' && document.body.dataset.loaded === '1', null, { timeout: 120_000 });
    assert.equal(await page.isDisabled('#classify'), false, 'Classify works on the new backend');
    assert.equal(await page.isDisabled('#load'), false);
  } finally {
    await context.close();
  }
});

test('Cancel stops a running job, and the model comes back', async () => {
  const { context, page } = await open('', SLOW);
  try {
    await load(page);
    await startLongJob(page);
    assert.equal(await page.isDisabled('#cancel'), false, 'Cancel is offered while busy');
    await page.click('#cancel');
    assert.match(await data(page, 'note'), /Cancelled/);
    await page.waitForFunction(() => document.body.dataset.busy === '0' && document.body.dataset.loaded === '1', null, { timeout: 120_000 });
    assert.equal(await page.isDisabled('#cancel'), true, 'nothing left to cancel');
    const before = Number(await data(page, 'results') || 0);
    await page.click('#classify');
    await page.waitForFunction((n) => Number(document.body.dataset.results || 0) > n, before, { timeout: 120_000 });
    assert.equal(before, 0, 'the cancelled classification drew nothing');
  } finally {
    await context.close();
  }
});

// The worker posts, after each real result and explanation, a copy that claims to be from
// the previous classification, with another label.
const STALE = `{
  const real = self.postMessage.bind(self);
  self.postMessage = (m, ...rest) => {
    real(m, ...rest);
    if (m && m.type === 'result') real({ ...m, id: m.id - 1, result: { ...m.result, label: 'STALE' } }, ...rest);
    if (m && m.type === 'explanation') real({ ...m, id: m.id - 1, text: 'STALE' }, ...rest);
  };
}
`;

test('a message about an earlier classification is never drawn', async () => {
  const { context, page } = await open('max_new_tokens=3', STALE);
  try {
    await load(page);
    await page.check('#explain');
    await page.fill('#text', TEXT);
    for (let i = 0; i < 2; i++) {
      await page.click('#classify');
      await page.waitForFunction(() => document.body.dataset.busy === '0', null, { timeout: 120_000 });
    }
    // Let the stale copies arrive, then check nothing of them shows.
    await page.waitForTimeout(300);
    assert.notEqual(await page.textContent('#label'), 'STALE');
    assert.notEqual(await page.textContent('#explanation'), 'STALE');
    assert.equal(await data(page, 'results'), '2');
  } finally {
    await context.close();
  }
});

test('a first visit to a site without the default model says so, without an error', async () => {
  // This test site serves no models/: the page asks for the default model and finds none.
  const { context, page } = await open('');
  try {
    await page.waitForFunction(() => document.body.dataset.note, null, { timeout: 120_000 });
    assert.match(await data(page, 'note'), /no default model \(models\/SmolLM2-135M-Instruct\.Q4_1\.gguf: 404\)/);
    assert.equal(await data(page, 'error'), undefined);
    assert.equal(await data(page, 'busy'), '0');
    assert.equal(await page.isDisabled('#classify'), true, 'no model is loaded');
    assert.equal(await page.isDisabled('#load'), false, 'files can still be picked');
    assert.ok(site.requests.some((r) => r.method === 'HEAD' && r.path === '/models/SmolLM2-135M-Instruct.Q4_1.gguf'));
  } finally {
    await context.close();
  }
});

test('after a failed load, Classify is disabled', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mq-ui-'));
  const bad = join(dir, 'broken.gguf');
  writeFileSync(bad, 'GGUF but not really');
  const { context, page } = await open('autoload=0');
  try {
    await load(page);
    assert.equal(await page.isDisabled('#classify'), false);
    await page.setInputFiles('#model-files', [bad]);
    await page.click('#load');
    await page.waitForFunction(() => document.body.dataset.error, null, { timeout: 120_000 });
    assert.match(await data(page, 'error'), /broken\.gguf|GGUF/i);
    assert.equal(await page.isDisabled('#classify'), true, 'no model is loaded any more');
    assert.equal(await data(page, 'loaded'), undefined);
  } finally {
    await context.close();
  }
});

// Every write to the Cache API fails as a full quota does.
const FULL = `{
  const openCache = caches.open.bind(caches);
  caches.open = async (name) => {
    const cache = await openCache(name);
    cache.put = async () => { throw new DOMException('the quota has been exceeded', 'QuotaExceededError'); };
    return cache;
  };
}
`;

test('a full storage quota still says loaded, with a warning', async () => {
  const { context, page } = await open('autoload=0', FULL);
  try {
    await load(page);
    assert.equal(await data(page, 'loaded'), '1');
    assert.match(await data(page, 'note'), /storage is full/);
    assert.equal(await page.isDisabled('#classify'), false);
  } finally {
    await context.close();
  }
});

test('files dropped while busy are refused with a message', async () => {
  const { context, page } = await open('autoload=0', SLOW);
  try {
    await load(page);
    await startLongJob(page);
    await page.evaluate(() => {
      const dt = new DataTransfer();
      dt.items.add(new File(['not a model'], 'other.gguf'));
      document.getElementById('drop').dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
    });
    assert.match(await data(page, 'note'), /Busy/);
    await page.waitForFunction(() => document.body.dataset.busy === '0', null, { timeout: 120_000 });
    assert.equal(await data(page, 'error'), undefined, 'the dropped file was not read');
    assert.equal(await data(page, 'results'), '1', 'the classification it was busy with ended');
  } finally {
    await context.close();
  }
});

test('at 320 px nothing overflows, and a result is announced once while the explanation streams', async () => {
  const { context, page } = await open('max_new_tokens=12&autoload=0');
  try {
    await page.setViewportSize({ width: 320, height: 640 });
    await load(page);
    await page.evaluate(() => {
      window.announced = [];
      new MutationObserver(() => window.announced.push(document.getElementById('announce').textContent))
        .observe(document.getElementById('announce'), { childList: true, characterData: true, subtree: true });
    });
    await page.check('#explain');
    await page.fill('#text', TEXT);
    await page.click('#classify');
    await page.waitForFunction(() => document.body.dataset.busy === '0' && document.body.dataset.results, null, { timeout: 120_000 });
    const announced = await page.evaluate(() => window.announced);
    assert.equal(announced.length, 1, `announcements: ${JSON.stringify(announced)}`);
    assert.match(announced[0], /^Label: .+not a diagnosis/);
    assert.equal(
      await page.$eval('#explanation', (e) => e.closest('[aria-live], [role=status], [role=alert], [role=log]')),
      null,
      'the streamed explanation is in no live region',
    );
    assert.ok((await page.getAttribute('#progress', 'aria-label')).length > 0, 'the progress bar has a name');
    const width = await page.evaluate(() => document.documentElement.scrollWidth);
    const wide = await page.evaluate(() => [...document.querySelectorAll('body *')]
      .filter((e) => e.getBoundingClientRect().right > 321)
      .map((e) => `${e.tagName.toLowerCase()}#${e.id} (${Math.round(e.getBoundingClientRect().right)} px)`));
    assert.ok(width <= 320, `the page is ${width} px wide at a 320 px viewport: ${wide.join(', ')}`);
  } finally {
    await context.close();
  }
});

// The worker's WebGPU device says it is lost, with `reason`, once the model is built (a
// browser gives 'unknown' for a driver reset or a crashed GPU process, 'destroyed' for a
// device destroyed on purpose). Only the first device of the worker is lost.
const LOSE_DEVICE = (reason) => `if (self.GPUAdapter) {
  const requestDevice = GPUAdapter.prototype.requestDevice;
  let lose = null;
  GPUAdapter.prototype.requestDevice = async function (descriptor) {
    const device = await requestDevice.call(this, descriptor);
    Object.defineProperty(device, 'lost', { value: new Promise((ok) => { lose = ok; }) });
    return device;
  };
  const real = self.postMessage.bind(self);
  self.postMessage = (m, ...rest) => {
    real(m, ...rest);
    if (m && m.type === 'loaded' && lose) setTimeout(() => lose({ reason: ${JSON.stringify(reason)}, message: 'simulated' }), 50);
  };
}
`;

test('a lost WebGPU device unloads the model and says so; it loads again on a new one', async (t) => {
  // The first worker's device is lost; the second's is not.
  const { context, page } = await open('autoload=0', (n) => (n === 1 ? LOSE_DEVICE('unknown') : ''), 'webgpu');
  try {
    const backend = await data(page, 'backend');
    if (!backend) { t.skip(`no usable WebGPU adapter here: ${await data(page, 'error')}`); return; }
    assert.match(backend, /^webgpu/);
    await page.setInputFiles('#model-files', TINY_FILES);
    await page.click('#load');
    await page.waitForFunction(() => document.body.dataset.deviceLost, null, { timeout: 120_000 });
    assert.match(await page.textContent('#error'), /GPU device was lost \(simulated\)/);
    assert.equal(await data(page, 'loaded'), undefined, 'the model is no longer loaded');
    assert.ok(await page.isDisabled('#classify'), 'Classify is disabled without a model');
    // A new worker, on a new device: the saved model builds again, and stays.
    await page.waitForFunction(() => document.body.dataset.backend && document.body.dataset.saved !== '0', null, { timeout: 120_000 });
    await page.click('#load-saved');
    await page.waitForFunction(() => document.body.dataset.loaded, null, { timeout: 120_000 });
    await page.waitForTimeout(500);
    assert.equal(await data(page, 'loaded'), '1');
    assert.ok(!(await page.isDisabled('#classify')), 'Classify is enabled again');
  } finally {
    await context.close();
  }
});

test('a WebGPU device destroyed on purpose is not reported as lost', async (t) => {
  const { context, page } = await open('autoload=0', LOSE_DEVICE('destroyed'), 'webgpu');
  try {
    if (!(await data(page, 'backend'))) { t.skip(`no usable WebGPU adapter here: ${await data(page, 'error')}`); return; }
    await load(page);
    await page.waitForTimeout(1000);
    assert.equal(await data(page, 'deviceLost'), undefined);
    assert.equal(await data(page, 'error'), undefined);
    assert.equal(await data(page, 'loaded'), '1');
  } finally {
    await context.close();
  }
});
