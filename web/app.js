// The page: picks files, talks to the worker that holds the model, draws the result.
// Everything heavy happens in worker.js; this thread only moves messages and DOM.

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);

const ui = {
  backendSelect: $('backend-select'), backend: $('backend'),
  modelFiles: $('model-files'), adapterFiles: $('adapter-files'), headFiles: $('head-files'),
  drop: $('drop'), modelUrl: $('model-url'), loadUrl: $('load-url'),
  load: $('load'), loadSaved: $('load-saved'), forget: $('forget'),
  progress: $('progress'), progressText: $('progress-text'), modelInfo: $('model-info'),
  task: $('task'), text: $('text'), explain: $('explain'), classify: $('classify'),
  result: $('result'), label: $('label'), time: $('time'), bars: $('bars'),
  truncated: $('truncated'), scorer: $('scorer'), explanation: $('explanation'), error: $('error'), announce: $('announce'),
  cancel: $('cancel'), note: $('note'), clearAll: $('clear-all'),
  storageList: $('storage-list'), storageTotal: $('storage-total'),
};

// The page's state, read by the browser tests through data-* attributes on <body>.
const state = (key, value) => { document.body.dataset[key] = value; };

let worker = null;
let nextId = 1;
let pending = null;
// The classification whose result and explanation may be drawn: a message about any other
// (an earlier one, or one from a worker since replaced) is dropped.
let currentId = null;
let loaded = false;
let savedFiles = [];
// A second visit builds the saved model at once, from this browser's storage; a first visit
// downloads the default model (or ?model=URL) from this site, with the shipped classifiers
// (?autoload=0 turns both off).
let autoLoad = params.get('autoload') !== '0';
const DEFAULT_MODEL = 'models/SmolLM2-135M-Instruct.Q4_1.gguf';

// A message that is not an error (a warning, or what Cancel did).
function showNotice(message) {
  ui.note.textContent = message;
  ui.note.hidden = !message;
  if (message) state('note', message);
}

function showError(message) {
  ui.error.textContent = message;
  ui.error.hidden = !message;
  if (message) state('error', message);
}

function setBusy(busy) {
  for (const b of [ui.load, ui.loadUrl, ui.classify]) b.disabled = busy;
  ui.classify.disabled = busy || !loaded;
  ui.cancel.disabled = !busy;
  ui.loadSaved.disabled = busy || savedFiles.length === 0;
  ui.forget.disabled = busy || savedFiles.length === 0;
  state('busy', busy ? '1' : '0');
}

const mib = (bytes) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;

// What this site keeps in the browser: the saved model files (worker.js), the app's offline
// copy (sw.js), and the total the browser counts for the site.
let storageDraw = 0;
async function showStorage() {
  // Calls overlap (a load's saved-state and the service worker's ready): only the latest
  // draws, or an older one, still reading the app's copy, would draw stale files last.
  const draw = ++storageDraw;
  const items = savedFiles.map((f) => [`${f.part}/${f.name}`, f.size || 0]);
  try {
    let bytes = 0;
    // Only once the service worker is ready: while it installs, its cache holds some of the
    // files (a draw then would show a part as the whole). `has` first: opening a cache that
    // is not there would make it.
    if (document.body.dataset.offlineReady === '1' && await caches.has('mentalqlm-app-v1')) {
      const app = await caches.open('mentalqlm-app-v1');
      for (const request of await app.keys()) {
        // sw.js writes each file's length beside it; a copy kept before it did is measured.
        const response = await app.match(request);
        const n = Number(response.headers.get('x-mentalqlm-bytes'));
        bytes += n > 0 ? n : (await response.blob()).size;
      }
    }
    if (bytes) items.push(['the app itself (for visits without a network)', bytes]);
  } catch { /* no Cache API here */ }
  let total = '';
  try {
    const { usage } = await navigator.storage.estimate();
    total = `; the browser counts ${mib(usage)} for this site`;
  } catch { /* no estimate here */ }
  if (draw !== storageDraw) return;
  ui.storageList.replaceChildren(...items.map(([name, bytes]) => {
    const li = document.createElement('li');
    li.textContent = `${name}: ${mib(bytes)}`;
    return li;
  }));
  const kept = items.reduce((n, [, b]) => n + b, 0);
  ui.storageTotal.textContent = items.length ? `${items.length} files, ${mib(kept)}${total}.` : `Nothing${total}.`;
  state('stored', String(kept));
}

// `unit` 'bytes' (downloads, reading files) is shown in MiB; 'steps' (building the model) as
// a percentage.
function showProgress(stage, done, total, unit = 'bytes') {
  ui.progress.hidden = false;
  if (total) {
    ui.progress.max = total;
    ui.progress.value = done;
    ui.progressText.textContent = unit === 'steps'
      ? `${stage} — ${Math.floor((100 * done) / total)}%`
      : `${stage} — ${(done / 2 ** 20).toFixed(1)} / ${mib(total)}`;
  } else {
    ui.progress.removeAttribute('value');
    ui.progressText.textContent = `${stage}…`;
  }
}

function hideProgress() {
  ui.progress.hidden = true;
  ui.progressText.textContent = '';
}

function drawResult(r) {
  ui.result.hidden = false;
  ui.label.textContent = r.label;
  // One announcement per result for screen readers (the explanation streams silently).
  ui.announce.textContent = `Label: ${r.label}. Screening support only, not a diagnosis.`;
  ui.time.textContent = `${(r.ms / 1000).toFixed(2)} s on ${r.backend}`;
  ui.scorer.textContent = scorerSentence(r);
  state('method', r.method);
  ui.bars.replaceChildren();
  const top = r.label_index;
  r.labels.forEach((name, i) => {
    const p = r.probabilities[i];
    const row = document.createElement('div');
    row.className = i === top ? 'bar top' : 'bar';
    row.dataset.label = name;
    row.dataset.p = String(p);
    const label = document.createElement('span');
    label.textContent = name;
    const track = document.createElement('div');
    track.className = 'track';
    const fill = document.createElement('div');
    fill.className = 'fill';
    fill.style.width = `${(100 * p).toFixed(1)}%`;
    track.append(fill);
    const value = document.createElement('span');
    value.className = 'p';
    value.textContent = p.toFixed(3);
    row.append(label, track, value);
    ui.bars.append(row);
  });
  ui.truncated.hidden = !r.truncated;
  // The raw result for tests and for anyone who wants the numbers.
  ui.result.dataset.json = JSON.stringify(r);
}

// Which classifier gave the label, and how well it did, in words.
function scorerSentence(r) {
  if (r.method === 'probe') {
    const f1 = r.classifier_test_f1 == null ? '' : `, which scored a weighted F1 of ${(100 * r.classifier_test_f1).toFixed(1)} out of 100 on the ${r.task} test set`;
    return `This label comes from the trained ${r.task} classifier shipped for this model${f1}.`;
  }
  if (r.method === 'head') return `This label comes from the stage-2 classifier head you picked for ${r.task}.`;
  return `This label comes from the untuned model: there is no trained ${r.task} classifier for this model, so it is the answer the base model finds likeliest, and often wrong.`;
}

function onMessage(event) {
  const m = event.data;
  switch (m.type) {
    case 'backend':
      ui.backend.textContent = m.description;
      state('backend', m.description);
      break;
    case 'progress':
      showProgress(m.stage, m.done, m.total, m.unit);
      break;
    case 'saved-state':
      savedFiles = m.files;
      ui.loadSaved.textContent = savedFiles.length ? `Load saved model (${savedFiles.filter((f) => f.part === 'model').map((f) => f.name).join(', ')})` : 'Load saved model';
      setBusy(pending !== null);
      state('saved', String(savedFiles.length));
      showStorage();
      if (autoLoad && !loaded && pending === null) {
        if (savedFiles.length) send({ type: 'saved' }, 'Reading saved files');
        else send({ type: 'url', url: params.get('model') || DEFAULT_MODEL, first: true }, 'Downloading the model');
      }
      autoLoad = false;
      break;
    case 'loaded': {
      loaded = true;
      pending = null;
      hideProgress();
      showNotice(m.saveError ? `Loaded, but ${m.saveError}.` : '');
      const i = m.info;
      ui.modelInfo.textContent = `${i.model} (${i.format}, ${i.layers} layers, hidden ${i.hidden_size}, vocabulary ${i.vocab_size})`
        + (i.adapter ? `, adapter ${i.adapter}` : '')
        + (i.head ? `, ${i.head.dataset} head` : '')
        + (i.classifiers && i.classifiers.length ? `; trained classifiers: ${i.classifiers.join('; ')}` : '')
        + (i.explainer ? `; explanations by ${i.explainer}` : '')
        + ` — built in ${(i.load_ms / 1000).toFixed(1)} s${m.saved ? ', saved in this browser' : ''}`;
      state('loaded', '1');
      state('loadMs', String(Math.round(i.load_ms)));
      setBusy(false);
      break;
    }
    case 'device-lost':
      // The GPU device under the model stopped working, and the model with it. A new worker
      // gets a new device; the message stays until the user loads the model again.
      startWorker();
      autoLoad = false;
      showError(`The GPU device was lost (${m.message}), and the model with it. Load it again (Load saved model, or pick it), or choose the CPU backend.`);
      state('deviceLost', '1');
      break;
    case 'no-default':
      pending = null;
      hideProgress();
      showNotice(`This site has no default model (${m.url}: ${m.status || 'not reachable'}). Pick a model file above, or type its address.`);
      setBusy(false);
      break;
    case 'result':
      if (m.id !== currentId) break;
      drawResult(m.result);
      if (!ui.explain.checked) { pending = null; hideProgress(); setBusy(false); }
      state('results', String(Number(document.body.dataset.results || 0) + 1));
      break;
    case 'explanation':
      if (m.id !== currentId) break;
      ui.explanation.hidden = false;
      ui.explanation.textContent = m.text;
      if (m.done) { pending = null; hideProgress(); setBusy(false); }
      break;
    case 'error':
      // A failed load leaves no model: the worker dropped the old one before building.
      if (['files', 'url', 'saved'].includes(m.request)) {
        loaded = false;
        ui.modelInfo.textContent = '';
        delete document.body.dataset.loaded;
      }
      if (m.request === 'classify' && m.id !== currentId) break;
      pending = null;
      currentId = null;
      hideProgress();
      showError(m.message);
      setBusy(false);
      break;
    default:
      break;
  }
}

// A new worker: on start, on a backend switch, and on Cancel. Whatever the old one was doing
// is dropped, and the page is no longer busy; the model must be loaded again (a saved one
// loads by itself).
function startWorker() {
  if (worker) worker.terminate();
  loaded = false;
  pending = null;
  currentId = null;
  hideProgress();
  delete document.body.dataset.loaded;
  ui.modelInfo.textContent = '';
  autoLoad = params.get('autoload') !== '0';
  setBusy(false);
  worker = new Worker(new URL('worker.js', import.meta.url), { type: 'module' });
  worker.onmessage = onMessage;
  worker.onerror = (e) => { showError(`the worker failed: ${e.message || 'unknown error'}`); setBusy(false); };
  const backend = ui.backendSelect.value;
  ui.backend.textContent = `starting ${backend}…`;
  state('backend', '');
  // Run-time switches (README, Settings) from the page's address, e.g. ?MENTALQLM_SIMD=0.
  worker.postMessage({ type: 'init', backend, settings: location.search });
}

function send(message, stage) {
  showError('');
  showNotice('');
  pending = message.type;
  setBusy(true);
  showProgress(stage);
  worker.postMessage(message);
}

function pickedFiles() {
  const parts = [['model', ui.modelFiles], ['adapter', ui.adapterFiles], ['head', ui.headFiles]];
  return parts.flatMap(([part, input]) => [...input.files].map((file) => ({ part, file })));
}

// A dropped file goes to the part its name says (adapter_*, classifier*), else the model.
function partOf(name) {
  if (name.startsWith('adapter_')) return 'adapter';
  if (name.startsWith('classifier')) return 'head';
  return 'model';
}

ui.load.onclick = () => {
  const files = pickedFiles();
  if (!files.some((f) => f.part === 'model')) { showError('Pick a model first: a .gguf file, or config.json + model.safetensors + its tokenizer files.'); return; }
  send({ type: 'files', files }, 'Reading files');
};
ui.loadUrl.onclick = () => {
  const url = ui.modelUrl.value.trim();
  if (!url) { showError('Type the address of a .gguf file or a model folder on this site.'); return; }
  send({ type: 'url', url }, 'Downloading');
};
ui.loadSaved.onclick = () => send({ type: 'saved' }, 'Reading saved files');
ui.forget.onclick = () => worker.postMessage({ type: 'forget' });
// Everything: the saved model files, the app's offline copy and its service worker.
ui.clearAll.onclick = async () => {
  worker.postMessage({ type: 'forget' });
  try {
    for (const name of await caches.keys()) if (name.startsWith('mentalqlm-')) await caches.delete(name);
    for (const r of (await navigator.serviceWorker?.getRegistrations()) || []) await r.unregister();
  } catch (e) { showError(`could not clear the storage: ${e.message || e}`); return; }
  showNotice('Cleared: nothing of this site is stored in this browser any more.');
  showStorage();
};
ui.backendSelect.onchange = startWorker;
ui.classify.onclick = () => {
  const text = ui.text.value;
  if (!text.trim()) { showError('The text is empty: type or paste a post to classify.'); return; }
  ui.explanation.hidden = true;
  ui.explanation.textContent = '';
  currentId = nextId++;
  send({ type: 'classify', id: currentId, task: ui.task.value, text, explain: ui.explain.checked, maxNewTokens: Number(params.get('max_new_tokens')) || 96 }, 'Classifying');
};

ui.drop.addEventListener('dragover', (e) => { e.preventDefault(); ui.drop.classList.add('over'); });
ui.drop.addEventListener('dragleave', () => ui.drop.classList.remove('over'));
ui.drop.addEventListener('drop', (e) => {
  e.preventDefault();
  ui.drop.classList.remove('over');
  const files = [...e.dataTransfer.files].map((file) => ({ part: partOf(file.name), file }));
  if (!files.length) return;
  if (pending !== null) { showNotice('Busy: wait for the current work to finish (or Cancel it), then drop the files again.'); return; }
  send({ type: 'files', files }, 'Reading files');
});
ui.cancel.onclick = () => {
  if (pending === null) return;
  const what = pending;
  startWorker();
  showNotice(what === 'classify'
    ? 'Cancelled. The model is being loaded again.'
    : 'Cancelled. Pick the files again to load a model.');
};

window.addEventListener('error', (e) => showError(`page error: ${e.message}`));
window.addEventListener('unhandledrejection', (e) => showError(`page error: ${e.reason && e.reason.message || e.reason}`));

// The app's offline copy (sw.js). data-offline-ready says when it holds every app file.
if ('serviceWorker' in navigator) {
  navigator.serviceWorker.register('sw.js').then(() => navigator.serviceWorker.ready)
    .then(() => { state('offlineReady', '1'); showStorage(); })
    .catch((e) => {
      state('offlineReady', '0');
      ui.storageTotal.textContent = `The app could not be kept for visits without a network (${e.message || e}).`;
    });
}

if (params.get('backend')) ui.backendSelect.value = params.get('backend');
if (params.get('task')) ui.task.value = params.get('task');
startWorker();
