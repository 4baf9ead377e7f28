// A static server for web/ on localhost, with the headers the page relies on: the
// Content-Security-Policy (workers take theirs from the response, not from index.html's
// meta tag), cross-origin isolation (COOP/COEP, for wasm threads) and the wasm MIME type.
// Files are revalidated on each use (an ETag and `no-cache`: an unchanged 45 MiB module
// costs a 304), and text and wasm go out gzipped to clients that accept it.
//
//   node web/serve.mjs [--port 8080] [--root web] [--no-isolation]   (--no-isolation: without
//                                          COOP/COEP, so the page runs the one-thread module)
//   node web/serve.mjs --root web/dist --headers web/dist/_headers   (the static bundle, with
//                                          only the headers its _headers file gives)
//
// Tests import `serve()` and read `requests` to check what the page asked for.

import { createServer } from 'node:http';
import { readFileSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { extname, join, normalize, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzip } from 'node:zlib';
import { promisify } from 'node:util';

const gzipped = promisify(gzip);
// The compressed body of each file, with the ETag (size and time) it was made for: the
// module is gzipped once, not per request, and a rebuilt file replaces its old copy.
const compressedCache = new Map();
// How many compressed bodies are kept (for tests).
export const compressedKept = () => compressedCache.size;
const COMPRESS = new Set(['.html', '.js', '.mjs', '.css', '.json', '.wasm', '.svg', '.txt']);

export const CSP = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; connect-src 'self'; worker-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'none'";

// Cross-origin isolation: with these the page and its workers get SharedArrayBuffer, which
// the threaded module (pkg-threads/) needs. Every file the page loads is from this origin.
export const ISOLATION = { 'cross-origin-opener-policy': 'same-origin', 'cross-origin-embedder-policy': 'require-corp' };

const TYPES = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8', '.json': 'application/json', '.wasm': 'application/wasm', '.png': 'image/png',
  '.svg': 'image/svg+xml',
};

/// A `_headers` file (Netlify's format: a path pattern, then its headers indented as
/// `Name: value`) as [{ pattern: RegExp, headers: {name: value} }]. `*` matches any run of
/// characters.
export function parseHeaders(text) {
  const rules = [];
  text.split('\n').forEach((line, i) => {
    if (!line.trim() || line.trim().startsWith('#')) return;
    if (!/^\s/.test(line)) {
      const glob = line.trim().replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*');
      rules.push({ pattern: new RegExp(`^${glob}$`), headers: {} });
      return;
    }
    const m = line.trim().match(/^([A-Za-z0-9-]+):\s*(.*)$/);
    if (!m || !rules.length) throw new Error(`_headers line ${i + 1}: expected "Name: value" under a path: ${line.trim()}`);
    rules.at(-1).headers[m[1].toLowerCase()] = m[2];
  });
  return rules;
}

/// Serves `root` (and, under /fixtures/, /models/ and /classifiers/, the extra folders given) on `port`
/// (0: any free port). With `headersFile` (a `_headers` file) the responses carry the headers
/// it gives instead of this server's own policy. `isolate: false` leaves out the
/// cross-origin isolation headers (the page then runs the one-thread module). Resolves to
/// { server, url, requests }.
export function serve({ root, port = 0, mounts = {}, headersFile = null, isolate = true }) {
  const requests = [];
  const rules = headersFile ? parseHeaders(readFileSync(headersFile, 'utf8')) : null;
  const policy = (path) => {
    if (!rules) return { 'content-security-policy': CSP, 'cache-control': 'no-cache', 'x-content-type-options': 'nosniff', ...(isolate ? ISOLATION : {}) };
    const out = {};
    for (const r of rules) if (r.pattern.test(path)) Object.assign(out, r.headers);
    return out;
  };
  const base = resolve(root);
  const server = createServer((req, res) => {
    // Nothing a client sends may end the server: a bad request gets 400, anything
    // unexpected 500.
    handle(req, res).catch(() => {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
      res.end('internal error');
    });
  });
  async function handle(req, res) {
    let url;
    let rel;
    try {
      url = new URL(req.url, 'http://localhost');
      rel = decodeURIComponent(url.pathname);
    } catch {
      // `GET /%` and the like: not a path at all.
      res.writeHead(400, { 'content-type': 'text/plain', 'content-security-policy': CSP }).end('bad request');
      return;
    }
    requests.push({ method: req.method, path: url.pathname, at: Date.now() });
    let dir = base;
    for (const [prefix, target] of Object.entries(mounts)) {
      if (rel.startsWith(prefix)) { dir = resolve(target); rel = rel.slice(prefix.length); break; }
    }
    const file = normalize(join(dir, rel.endsWith('/') ? `${rel}index.html` : rel));
    if (file !== dir && !file.startsWith(dir + sep)) { res.writeHead(403).end('forbidden'); return; }
    try {
      const info = await stat(file);
      if (!info.isFile()) throw new Error('not a file');
      const zip = COMPRESS.has(extname(file)) && /\bgzip\b/.test(req.headers['accept-encoding'] || '');
      const etag = `"${info.size.toString(16)}-${Math.floor(info.mtimeMs).toString(16)}${zip ? '-gz' : ''}"`;
      const headers = {
        'content-type': TYPES[extname(file)] || 'application/octet-stream',
        etag,
        vary: 'accept-encoding',
        ...policy(url.pathname),
      };
      if (req.headers['if-none-match'] === etag) { res.writeHead(304, headers).end(); return; }
      // HEAD (a first visit asking whether the default model is here) reads no file.
      let body = null;
      if (req.method !== 'HEAD' || zip) {
        body = await readFile(file);
        if (zip) {
          const kept = compressedCache.get(file);
          if (kept && kept.etag === etag) {
            body = kept.body;
          } else {
            body = await gzipped(body);
            compressedCache.set(file, { etag, body });
          }
          headers['content-encoding'] = 'gzip';
        }
      }
      headers['content-length'] = body ? body.length : info.size;
      res.writeHead(200, headers);
      res.end(req.method === 'HEAD' ? undefined : body);
    } catch {
      res.writeHead(404, { 'content-type': 'text/plain', 'content-security-policy': CSP }).end('not found');
    }
  }
  return new Promise((ok) => server.listen(port, '127.0.0.1', () => {
    ok({ server, url: `http://127.0.0.1:${server.address().port}/`, requests });
  }));
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const arg = (name, fallback) => { const i = process.argv.indexOf(name); return i > 0 ? process.argv[i + 1] : fallback; };
  const here = fileURLToPath(new URL('.', import.meta.url));
  const headersFile = arg('--headers', null);
  // The bundle holds its models and classifiers; web/ itself takes them from the repository.
  const mounts = headersFile ? {} : { '/models/': resolve(here, '../models'), '/classifiers/': resolve(here, '../classifiers') };
  const isolate = !process.argv.includes('--no-isolation');
  const { url } = await serve({ root: arg('--root', here), port: Number(arg('--port', 8080)), mounts, headersFile, isolate });
  console.log(`mentalqlm web page: ${url}  (Ctrl-C stops)`);
}
