// web/serve.mjs against hostile requests: each gets an error status, and the server keeps
// serving. No browser needed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { compressedKept, serve } from '../../web/serve.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/// A raw GET of `path`, sent as written (fetch would normalize it).
function get(port, path) {
  return new Promise((ok, fail) => {
    const req = request({ host: '127.0.0.1', port, path, method: 'GET' }, (res) => {
      res.resume();
      res.on('end', () => ok(res.statusCode));
    });
    // The old server never answered `GET /%` (its handler threw): fail, do not hang.
    req.setTimeout(5000, () => req.destroy(new Error(`no answer to GET ${path}`)));
    req.on('error', fail);
    req.end();
  });
}

test('hostile paths get an error status and the server keeps serving', async () => {
  const { server } = await serve({ root: join(ROOT, 'web') });
  const port = server.address().port;
  try {
    assert.equal(await get(port, '/%'), 400);
    assert.equal(await get(port, '/%E0%A4%A'), 400);
    assert.equal(await get(port, '/a%00b'), 404);
    assert.equal(await get(port, '/../../etc/passwd'), 404);
    assert.equal(await get(port, '/%2e%2e/%2e%2e/etc/passwd'), 404, 'dot segments are removed by the URL parser');
    assert.equal(await get(port, '/..%2f..%2fetc/passwd'), 403, 'escaped slashes cannot leave the root');
    assert.equal(await get(port, '/no-such-file.js'), 404);
    assert.equal(await get(port, '/index.html'), 200, 'still serving after all of the above');
  } finally {
    server.close();
  }
});

/// A GET of `path` asking for gzip: the status and the body, unzipped.
function getGzipped(port, path) {
  return new Promise((ok, fail) => {
    const req = request({ host: '127.0.0.1', port, path, method: 'GET', headers: { 'accept-encoding': 'gzip' } }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const body = Buffer.concat(chunks);
        ok({ status: res.statusCode, text: (res.headers['content-encoding'] === 'gzip' ? gunzipSync(body) : body).toString() });
      });
    });
    req.setTimeout(5000, () => req.destroy(new Error(`no answer to GET ${path}`)));
    req.on('error', fail);
    req.end();
  });
}

test('a changed file is compressed again and its old compressed copy is dropped', async () => {
  const root = mkdtempSync(join(tmpdir(), 'mentalqlm-serve-'));
  const { server } = await serve({ root });
  const port = server.address().port;
  try {
    const before = compressedKept();
    writeFileSync(join(root, 'app.js'), '// the first build\n');
    assert.deepEqual(await getGzipped(port, '/app.js'), { status: 200, text: '// the first build\n' });
    assert.deepEqual(await getGzipped(port, '/app.js'), { status: 200, text: '// the first build\n' });
    assert.equal(compressedKept(), before + 1, 'one compressed copy, made once');
    // A rebuild (another size, so another ETag): served new, and the old copy is gone.
    writeFileSync(join(root, 'app.js'), '// the second, longer build\n');
    assert.deepEqual(await getGzipped(port, '/app.js'), { status: 200, text: '// the second, longer build\n' });
    assert.equal(compressedKept(), before + 1, 'the old compressed copy is kept beside the new one');
  } finally {
    server.close();
    rmSync(root, { recursive: true, force: true });
  }
});
