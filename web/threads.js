// One thread of the CPU kernels' pool, for the module built with wasm threads
// (pkg-threads/): worker.js starts one of these per thread and sends it the module and its
// shared memory. It instantiates the module on that memory, says it is ready, and then runs
// the pool thread the module hands it, which never returns.

self.onmessage = async ({ data }) => {
  try {
    const m = await import('./pkg-threads/mentalqlm_web.js');
    await m.default({ module_or_path: data.module, memory: data.memory });
    self.postMessage({ type: 'ready' });
    m.run_thread();
  } catch (e) {
    self.postMessage({ type: 'error', message: e instanceof Error ? e.message : String(e) });
  }
};
