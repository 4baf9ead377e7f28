// The model lives here, off the page's thread: the wasm module (pkg/, built by build.sh),
// the files it was built from (kept in the Cache API, so a second visit reads them from this
// browser and not from the network), and every classification.
//
// Messages in:  init {backend} · files {files: [{part, file}]} · url {url} · saved · forget ·
//               classify {id, task, text, explain, maxNewTokens}
//               (url {url, first: true}: the default model of a first visit)
// Messages out: backend · progress · loaded · saved-state · result · explanation · error ·
//               no-default (a first visit found no default model on this site) ·
//               device-lost (the WebGPU device stopped working)
//
// The module comes in two builds: pkg-threads/ (wasm threads: the CPU kernels split their
// work over a pool of Web Workers, threads.js, sharing the module's memory) and pkg/ (one
// thread). Shared memory exists only where the page is cross-origin isolated (the COOP and
// COEP headers of serve.mjs and the bundle), so the threaded build is used there, and the
// other one wherever it cannot run.

// The module in use (its exported functions), once ensureWasm() ends.
let mq = null;

const CACHE = 'mentalqlm-files-v1';
const SAVED = new URL('mentalqlm-saved/', self.location.href);
const MANIFEST = new URL('manifest.json', SAVED).href;
const savedKey = (part, name) => new URL(`${part}/${encodeURIComponent(name)}`, SAVED).href;

// wgpu 30's WebGPU backend does not know the `subgroups` feature, so the device it asks
// for never has it. CubeCL's matmul shaders read the subgroup size, which in a browser needs
// `enable subgroups;` and so that feature on the device: without it each one is rejected.
// Ask for it whenever the adapter offers it; lib.rs reads `mentalqlmSubgroups` to know.
self.mentalqlmSubgroups = false;
if (self.GPUAdapter) {
  const requestDevice = GPUAdapter.prototype.requestDevice;
  GPUAdapter.prototype.requestDevice = async function (descriptor = {}) {
    const required = [...(descriptor.requiredFeatures ?? [])];
    if (this.features.has('subgroups') && !required.includes('subgroups')) required.push('subgroups');
    const device = await requestDevice.call(this, { ...descriptor, requiredFeatures: required });
    device.lost.then(onDeviceLost);
    self.mentalqlmSubgroups = device.features.has('subgroups');
    if (self.mentalqlmSubgroups) {
      const createShaderModule = device.createShaderModule;
      device.createShaderModule = function (d) {
        // Directives may come in any order, so `enable f16;` can precede it.
        if (/^\s*enable subgroups;/m.test(d.code)) d = { ...d, code: `diagnostic(off, subgroup_uniformity);\n${d.code}` };
        return createShaderModule.call(this, d);
      };
    }
    return device;
  };
}

// A WebGPU device stopped working (a driver reset, the GPU process gone): the model on it
// went with it, and the page starts a new worker. A device destroyed on purpose (wgpu
// destroys one while loading, on SwiftShader) is not a loss.
function onDeviceLost(info) {
  if (info.reason === 'destroyed') return;
  post({ type: 'device-lost', message: info.message || 'no reason given' });
}

let wasmReady = null;
let backendDescription = null;
// The runtime's start (init): a load asked for before it ends waits for it.
let starting = null;

const post = (msg) => self.postMessage(msg);
// `unit`: 'bytes', or 'steps' (of the model's build: its embedding table, layers and head).
const progress = (stage, done = null, total = null, unit = 'bytes') => post({ type: 'progress', stage, done, total, unit });

async function ensureWasm() {
  if (!wasmReady) throw new Error('the runtime is not started');
  await wasmReady;
}

const loadModule = async (path) => {
  const m = await import(path);
  await m.default();
  return m;
};

// The threaded module for `backend` and a pool of `wanted` threads ({ module }), or why the
// page runs the one-thread module instead ({ why }; null when one thread was asked for).
async function threadedModule(backend, wanted) {
  if (backend === 'webgpu') return { why: 'WebGPU was asked for, and it runs in the one-thread module' };
  if (!self.crossOriginIsolated) return { why: 'the page is not cross-origin isolated (COOP/COEP headers), so it has no shared memory' };
  if (wanted < 2) return { why: null };
  try {
    return { module: await import('./pkg-threads/mentalqlm_web.js') };
  } catch {
    return { why: 'this site has no threaded build (pkg-threads/)' };
  }
}

// Starts `n` pool workers on the threaded module's memory, waits until each runs, then
// builds the pool (which waits for them: they must be running first).
async function startThreads(m, n) {
  const module = m.thread_module();
  const memory = m.thread_memory();
  await Promise.all(Array.from({ length: n }, (_, i) => new Promise((ok, fail) => {
    const w = new Worker(new URL('./threads.js', import.meta.url), { type: 'module', name: `mentalqlm thread ${i + 1}` });
    w.onmessage = (e) => (e.data.type === 'ready' ? ok() : fail(new Error(`thread ${i + 1}: ${e.data.message}`)));
    w.onerror = (e) => fail(new Error(`thread ${i + 1} did not start: ${e.message || 'no reason given'}`));
    w.postMessage({ module, memory });
  })));
  return m.start_pool(n);
}

// Loads the module for `backend` and starts it there; sets `mq` and `backendDescription`.
// WebGPU runs in the one-thread module (wgpu is not built with threads); the CPU backend in
// the threaded one where it can run. For `auto`, where the browser gives a WebGPU adapter,
// the one-thread module decides as the CLI does, and the threaded one takes over when it
// chose the CPU.
async function startModule(backend, settings, wanted) {
  const { module: m, why } = await threadedModule(backend, wanted);
  if (!m) {
    mq = await loadModule('./pkg/mentalqlm_web.js');
    backendDescription = await mq.init(backend, settings);
    if (backendDescription.startsWith('cpu')) backendDescription += why ? `; one thread: ${why}` : '; one thread';
    return;
  }
  let description = null;
  if (backend === 'auto' && self.navigator.gpu && await self.navigator.gpu.requestAdapter().catch(() => null)) {
    const single = await loadModule('./pkg/mentalqlm_web.js');
    description = await single.init('auto', settings);
    if (!description.startsWith('cpu')) {
      mq = single;
      backendDescription = description;
      return;
    }
  }
  await m.default();
  const n = await startThreads(m, wanted);
  const own = await m.init(backend, settings);
  mq = m;
  backendDescription = `${description ?? own}; ${n} threads`;
}

async function start(backend, settings) {
  progress('Starting the runtime');
  const params = [...new URLSearchParams(settings)];
  const asked = params.find(([k]) => k === 'MENTALQLM_THREADS');
  // The pool's size: MENTALQLM_THREADS in the page's address, else the browser's count of
  // logical processors; 1 runs the one-thread module.
  let wanted = navigator.hardwareConcurrency || 1;
  if (asked) {
    wanted = Number(asked[1]);
    if (!Number.isInteger(wanted) || wanted < 1 || wanted > 256) throw new Error(`MENTALQLM_THREADS=${asked[1]}: expected a whole number of threads from 1 to 256`);
  }
  const lines = params.filter(([k]) => k.startsWith('MENTALQLM_') && k !== 'MENTALQLM_THREADS').map(([k, v]) => `${k}=${v}`).join('\n');
  wasmReady = startModule(backend, lines, wanted);
  await wasmReady;
  post({ type: 'backend', description: backendDescription });
  await reportSaved();
}

// ---- the browser's storage -------------------------------------------------------------

async function savedManifest() {
  // `has` first: opening a cache that is not there would make it (after Forget, too).
  if (!('caches' in self) || !(await caches.has(CACHE))) return null;
  const cache = await caches.open(CACHE);
  const hit = await cache.match(MANIFEST);
  return hit ? hit.json() : null;
}

async function reportSaved() {
  const manifest = await savedManifest();
  post({ type: 'saved-state', files: manifest ? manifest.files : [] });
}

async function save(files) {
  if (!('caches' in self)) return false;
  await caches.delete(CACHE);
  const cache = await caches.open(CACHE);
  let done = 0;
  const total = files.reduce((n, f) => n + f.bytes.byteLength, 0);
  for (const f of files) {
    await cache.put(savedKey(f.part, f.name), new Response(f.bytes));
    done += f.bytes.byteLength;
    progress('Saving the files in this browser', done, total);
  }
  const manifest = { files: files.map((f) => ({ part: f.part, name: f.name, size: f.bytes.byteLength })) };
  await cache.put(MANIFEST, new Response(JSON.stringify(manifest), { headers: { 'content-type': 'application/json' } }));
  return true;
}

async function readSaved() {
  const manifest = await savedManifest();
  if (!manifest) throw new Error('no saved model in this browser');
  const cache = await caches.open(CACHE);
  const files = [];
  // In bytes, as every other stage (the page shows MiB; it showed file counts as MiB).
  const total = manifest.files.reduce((n, f) => n + (f.size || 0), 0);
  let done = 0;
  for (const f of manifest.files) {
    const hit = await cache.match(savedKey(f.part, f.name));
    if (!hit) throw new Error(`the saved file ${f.part}/${f.name} is gone from this browser's storage; pick the files again`);
    const bytes = new Uint8Array(await hit.arrayBuffer());
    files.push({ part: f.part, name: f.name, bytes });
    done += bytes.byteLength;
    progress('Reading saved files', done, Math.max(total, done));
  }
  return files;
}

// ---- reading files -------------------------------------------------------------------

async function readPicked(picked) {
  const total = picked.reduce((n, p) => n + p.file.size, 0);
  let done = 0;
  const files = [];
  for (const { part, file } of picked) {
    const bytes = new Uint8Array(await file.arrayBuffer());
    done += file.size;
    progress(`Reading ${file.name}`, done, total);
    files.push({ part, name: file.name, bytes });
  }
  return files;
}

// One download of several files shows one progress: bytes of them all, against the sizes the
// server gave for them up front (HEAD), and grown by any file that was not planned.
let download = null;

// `known`: sizes already had from a HEAD, by URL (a first visit's check of its model).
async function planDownload(urls, known = new Map()) {
  let total = 0;
  for (const url of urls) {
    if (known.has(url)) {
      total += known.get(url);
      continue;
    }
    try {
      const head = await fetch(url, { method: 'HEAD' });
      if (head.ok) total += Number(head.headers.get('content-length')) || 0;
    } catch { /* counted when it comes, if it does */ }
  }
  download = { done: 0, total };
}

async function readCounted(response) {
  if (!response.body) {
    const bytes = new Uint8Array(await response.arrayBuffer());
    if (download) download.done += bytes.byteLength;
    return bytes;
  }
  const reader = response.body.getReader();
  const chunks = [];
  let done = 0;
  const size = Number(response.headers.get('content-length')) || null;
  for (;;) {
    const { done: end, value } = await reader.read();
    if (end) break;
    chunks.push(value);
    done += value.byteLength;
    if (download) {
      download.done += value.byteLength;
      download.total = Math.max(download.total, download.done);
      progress('Downloading the model and its classifiers', download.done, download.total);
    } else {
      progress('Downloading', done, size);
    }
  }
  const bytes = new Uint8Array(done);
  let at = 0;
  for (const c of chunks) { bytes.set(c, at); at += c.byteLength; }
  return bytes;
}

async function fetchBytes(url, label) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${label}: the server answered ${response.status} ${response.statusText}`);
  return readCounted(response);
}

// A same-origin URL: one .gguf file, or a HF folder ending in "/" (config.json,
// model.safetensors and tokenizer.json; without tokenizer.json, the SentencePiece model of
// a Llama (tokenizer.model) or T5 (spiece.model), or BART's vocab.json + merges.txt; and
// an encoder-decoder model's generation_config.json when it has one). Only files the
// folder should have are asked for.
async function fetchModel(url) {
  const base = new URL(url, self.location.href);
  if (base.origin !== self.location.origin) throw new Error(`${url}: only files from this site can be loaded (${self.location.origin})`);
  const name = decodeURIComponent(base.pathname.split('/').pop());
  if (name.toLowerCase().endsWith('.gguf')) {
    return [{ part: 'model', name, bytes: await fetchBytes(base.href, name) }];
  }
  const dir = base.href.endsWith('/') ? base.href : `${base.href}/`;
  const files = [];
  const get = async (f) => files.push({ part: 'model', name: f, bytes: await fetchBytes(new URL(f, dir).href, f) });
  const getIfThere = async (f) => {
    const response = await fetch(new URL(f, dir).href);
    if (response.ok) files.push({ part: 'model', name: f, bytes: await readCounted(response) });
    return response.ok;
  };
  await get('config.json');
  await get('model.safetensors');
  let modelType = '';
  try { modelType = JSON.parse(new TextDecoder().decode(files[0].bytes)).model_type || ''; } catch { /* the module names the error */ }
  const encoderDecoder = modelType === 'bart' || modelType === 't5';
  if (encoderDecoder) await getIfThere('generation_config.json');
  if (await getIfThere('tokenizer.json')) return files;
  if (modelType === 'bart') {
    await get('vocab.json');
    await get('merges.txt');
  } else {
    await get(modelType === 't5' ? 'spiece.model' : 'tokenizer.model');
  }
  return files;
}

// The shipped head-only classifiers (classifiers/<task>/ on this site), fetched with a new
// model: the module checks each against the model's sha256 and passes over those made for
// another model (that task is then scored untuned, and the result says so).
const TASKS = ['DR', 'dreaddit', 'Irf', 'MultiWD', 'SAD', 'DEP-SEVERITY'];

// The shipped files' addresses, for planning a download.
function shippedUrls() {
  const urls = [];
  for (const task of TASKS) for (const name of ['classifier.json', 'probe.safetensors']) urls.push(new URL(`classifiers/${task}/${name}`, self.location.href).href);
  for (const name of ['explainer.json', 'adapter_config.json', 'adapter_model.safetensors']) urls.push(new URL(`classifiers/explainer/${name}`, self.location.href).href);
  return urls;
}

async function fetchClassifiers() {
  if (!download) progress('Downloading the trained classifiers');
  const files = [];
  for (const task of TASKS) {
    const dir = new URL(`classifiers/${task}/`, self.location.href);
    const parts = [];
    for (const name of ['classifier.json', 'probe.safetensors']) {
      let response;
      try { response = await fetch(new URL(name, dir).href); } catch { break; }
      if (!response.ok) break;
      parts.push({ part: `classifier/${task}`, name, bytes: await readCounted(response) });
    }
    if (parts.length === 2) files.push(...parts);
  }
  // The shipped explainer (a stage-1 adapter for explanations), when the server has one.
  const dir = new URL('classifiers/explainer/', self.location.href);
  const parts = [];
  for (const name of ['explainer.json', 'adapter_config.json', 'adapter_model.safetensors']) {
    let response;
    try { response = await fetch(new URL(name, dir).href); } catch { break; }
    if (!response.ok) break;
    parts.push({ part: 'explainer', name, bytes: await readCounted(response) });
  }
  if (parts.length === 3) files.push(...parts);
  return files;
}

// ---- building and classifying -----------------------------------------------------------

async function build(files, { persist }) {
  await ensureWasm();
  await starting;
  if (!backendDescription) throw new Error('the runtime is not started');
  mq.clear();
  for (const f of files) mq.add_file(f.part, f.name, f.bytes);
  progress('Building the model');
  const started = performance.now();
  const info = JSON.parse(mq.load((done, total) => progress('Building the model', done, total, 'steps')));
  info.load_ms = performance.now() - started;
  let saved = false;
  let saveError = null;
  // The model is loaded whether or not it can be kept: a full storage quota is a warning.
  if (persist) {
    try {
      saved = await save(files);
    } catch (e) {
      saveError = e && e.name === 'QuotaExceededError'
        ? 'the files were not saved in this browser: its storage is full (free some space, or Forget saved files)'
        : `the files were not saved in this browser: ${e && e.message || e}`;
      try { await caches.delete(CACHE); } catch { /* nothing half-saved stays */ }
    }
  }
  post({ type: 'loaded', info, backend: backendDescription, saved, saveError });
  await reportSaved();
}

async function classify({ id, task, text, explain, maxNewTokens }) {
  const started = performance.now();
  const result = JSON.parse(await mq.classify(task, text));
  result.ms = performance.now() - started;
  result.backend = backendDescription;
  post({ type: 'result', id, result });
  if (explain) {
    const t0 = performance.now();
    const answer = await mq.explain(task, text, result.label_index, maxNewTokens || 96, (soFar) => post({ type: 'explanation', id, text: soFar, done: false }));
    post({ type: 'explanation', id, text: answer, done: true, ms: performance.now() - t0 });
  }
}

const handlers = {
  init: (m) => (starting = start(m.backend || 'auto', m.settings || '')),
  files: async (m) => build([...await readPicked(m.files), ...await fetchClassifiers()], { persist: true }),
  url: async (m) => {
    const model = new URL(m.url, self.location.href);
    const local = model.origin === self.location.origin;
    // A first visit asks for the site's default model; a site without one is not an error.
    // Its answer's size goes into the download's plan, which so asks for it only once.
    const known = new Map();
    if (m.first) {
      const response = local ? await fetch(model.href, { method: 'HEAD' }) : null;
      if (!response || !response.ok) {
        post({ type: 'no-default', url: m.url, status: response ? response.status : 0 });
        return;
      }
      const size = Number(response.headers.get('content-length'));
      if (size > 0) known.set(model.href, size);
    }
    // A .gguf is one file; a folder's files are counted as they come.
    const planned = local && model.pathname.toLowerCase().endsWith('.gguf') ? [model.href] : [];
    progress('Downloading the model and its classifiers');
    await planDownload([...planned, ...shippedUrls()], known);
    let files;
    try {
      files = [...await fetchModel(m.url), ...await fetchClassifiers()];
    } finally {
      download = null;
    }
    await build(files, { persist: true });
  },
  saved: async () => build(await readSaved(), { persist: false }),
  forget: async () => { if ('caches' in self) await caches.delete(CACHE); await reportSaved(); },
  classify,
};

self.onmessage = async (event) => {
  const message = event.data;
  try {
    await handlers[message.type](message);
  } catch (e) {
    const text = e instanceof Error ? e.message : String(e);
    // A Rust panic surfaces as a RuntimeError ("unreachable"); its message is in the console.
    const internal = e instanceof WebAssembly.RuntimeError;
    // Running out of memory reads as a RangeError, or as a failed allocation in the runtime.
    const memory = e instanceof RangeError || /out of memory|memory allocation|allocation failed|Maximum call stack/i.test(text);
    post({
      type: 'error',
      request: message.type,
      id: message.id,
      message: memory
        ? `out of memory (${text}): this device cannot hold the model here; try the other backend, a smaller model, or close other tabs, then reload the page`
        : internal ? `internal error in the model runtime (${text}); reload the page` : text,
    });
  }
};

self.addEventListener('unhandledrejection', (event) => {
  post({ type: 'error', request: 'worker', message: String(event.reason && event.reason.message || event.reason) });
});
