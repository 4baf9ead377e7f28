// A static server for web/ on localhost, with the headers the page relies on: the
// Content-Security-Policy (workers take theirs from the response, not from index.html's
// meta tag), the wasm MIME type, and no caching of the app itself.
//
//   node web/serve.mjs [--port 8080] [--root web]
//
// Tests import `serve()` and read `requests` to check what the page asked for.

import { createServer } from 'node:http';
import { readFile, stat } from 'node:fs/promises';
import { extname, join, normalize, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

export const CSP = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; connect-src 'self'; worker-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'none'";

const TYPES = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8', '.json': 'application/json', '.wasm': 'application/wasm', '.png': 'image/png',
  '.svg': 'image/svg+xml',
};

/// Serves `root` (and, under /fixtures/, /models/ and /classifiers/, the extra folders given) on `port`
/// (0: any free port). Resolves to { server, url, requests }.
export function serve({ root, port = 0, mounts = {} }) {
  const requests = [];
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
      // HEAD (a first visit asking whether the default model is here) reads no file.
      const body = req.method === 'HEAD' ? null : await readFile(file);
      res.writeHead(200, {
        'content-type': TYPES[extname(file)] || 'application/octet-stream',
        'content-length': info.size,
        'content-security-policy': CSP,
        'cache-control': 'no-store',
        'x-content-type-options': 'nosniff',
      });
      res.end(body ?? undefined);
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
  const { url } = await serve({ root: arg('--root', here), port: Number(arg('--port', 8080)), mounts: { '/models/': resolve(here, '../models'), '/classifiers/': resolve(here, '../classifiers') } });
  console.log(`mentalqlm web page: ${url}  (Ctrl-C stops)`);
}
