// The service worker: keeps the app itself (page, scripts, the wasm module) so that a visit
// without a network still starts. The model and classifiers are kept by worker.js in their
// own cache; this one holds only the app's files, all from this origin.
//
// Every request for an app file goes to the network first (the server answers 304 when the
// file is unchanged, so the 45 MiB module is not downloaded again), and the cached copy is
// served when the network fails. A file that changed replaces the cached copy.

const CACHE = 'mentalqlm-app-v1';
const SHELL = ['./', 'index.html', 'app.js', 'worker.js', 'threads.js', 'style.css', 'pkg/mentalqlm_web.js', 'pkg/mentalqlm_web_bg.wasm'];
// The threaded module: kept when the site has it (a site may serve only the one-thread one).
const OPTIONAL = ['pkg-threads/mentalqlm_web.js', 'pkg-threads/mentalqlm_web_bg.wasm'];
const shellUrls = () => [...SHELL, ...OPTIONAL].map((p) => new URL(p, self.registration.scope).href);
const optional = (url) => OPTIONAL.some((p) => new URL(p, self.registration.scope).href === url);

// Keeps a copy of `response` under `key`, its body's length in a header (BYTES), so that the
// page's storage list reads one header per file instead of the whole 45 MiB module each
// time it draws. The body is stored decoded, so the encoding and length the server sent
// for it are dropped.
const BYTES = 'x-mentalqlm-bytes';
async function keep(cache, key, response) {
  const body = await response.arrayBuffer();
  const headers = new Headers(response.headers);
  headers.delete('content-encoding');
  headers.delete('content-length');
  headers.set(BYTES, String(body.byteLength));
  await cache.put(key, new Response(body, { status: response.status, statusText: response.statusText, headers }));
}

self.addEventListener('install', (event) => {
  event.waitUntil((async () => {
    const cache = await caches.open(CACHE);
    // All or nothing, as `addAll`: every file is fetched before any is kept.
    const responses = await Promise.all(shellUrls().map(async (url) => {
      const response = await fetch(url);
      if (!response.ok) {
        if (optional(url) && response.status === 404) return null;
        throw new Error(`${url}: HTTP ${response.status}`);
      }
      return [url, response];
    }));
    for (const [url, response] of responses.filter(Boolean)) await keep(cache, url, response);
    await self.skipWaiting();
  })());
});

self.addEventListener('activate', (event) => {
  event.waitUntil((async () => {
    for (const name of await caches.keys()) {
      if (name.startsWith('mentalqlm-app-') && name !== CACHE) await caches.delete(name);
    }
    await self.clients.claim();
  })());
});

// The cache key of an app file: its URL without the query (`?backend=cpu` is the same page).
function appKey(request) {
  const url = new URL(request.url);
  if (url.origin !== self.location.origin || request.method !== 'GET') return null;
  url.search = '';
  url.hash = '';
  return shellUrls().includes(url.href) ? url.href : null;
}

self.addEventListener('fetch', (event) => {
  const key = appKey(event.request);
  if (!key) return; // the model's files, classifiers and anything else: not ours
  event.respondWith((async () => {
    const cache = await caches.open(CACHE);
    try {
      const response = await fetch(event.request);
      if (response.ok) {
        const cached = await cache.match(key);
        const tag = (r) => r && (r.headers.get('etag') || r.headers.get('last-modified'));
        if (!cached || !tag(response) || tag(cached) !== tag(response)) await keep(cache, key, response.clone());
      }
      return response;
    } catch (e) {
      const cached = await cache.match(key);
      if (cached) return cached;
      throw e;
    }
  })());
});
