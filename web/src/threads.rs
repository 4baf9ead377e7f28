//! Wasm threads (a module built by `web/build.sh` with `atomics`): rayon's global pool, the
//! one our CPU kernels split their rows and products over, on Web Workers that share this
//! module's memory.
//!
//! The browser starts no thread for Rust, so the page does: `web/threads.js` starts one Web
//! Worker per thread, each instantiates this module on the shared memory
//! ([`thread_module`], [`thread_memory`]) and calls [`run_thread`], which waits for a
//! thread of the pool to run. Once they all wait, [`start_pool`] builds the pool, handing
//! each worker its thread. The order matters: building the pool waits until every thread
//! runs, and the calling worker cannot start workers while it waits.

use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Mutex, OnceLock};

use rayon::ThreadBuilder;
use wasm_bindgen::prelude::*;

/// The pool's threads on their way to the workers that run them.
struct Handoff {
    send: Mutex<Sender<ThreadBuilder>>,
    receive: Mutex<Receiver<ThreadBuilder>>,
}

fn handoff() -> &'static Handoff {
    static HANDOFF: OnceLock<Handoff> = OnceLock::new();
    HANDOFF.get_or_init(|| {
        let (send, receive) = channel();
        Handoff {
            send: Mutex::new(send),
            receive: Mutex::new(receive),
        }
    })
}

/// This module, for the workers that run the pool's threads.
#[wasm_bindgen]
pub fn thread_module() -> JsValue {
    wasm_bindgen::module()
}

/// This module's shared memory, for the same workers.
#[wasm_bindgen]
pub fn thread_memory() -> JsValue {
    wasm_bindgen::memory()
}

/// Run by each pool worker after it instantiated the module: waits for one of the pool's
/// threads and runs it, which returns only when the pool ends (never, for the global one).
#[wasm_bindgen]
pub fn run_thread() -> Result<(), JsError> {
    let thread = handoff()
        .receive
        .lock()
        .map_err(|_| JsError::new("the thread handoff was poisoned"))?
        .recv()
        .map_err(|_| JsError::new("no thread came for this worker"))?;
    thread.run();
    Ok(())
}

/// Builds rayon's global pool of `threads` threads, run by the workers already waiting in
/// [`run_thread`] (as many as `threads`, or this call waits for the missing ones for ever).
/// Returns the number of threads the pool has.
#[wasm_bindgen]
pub fn start_pool(threads: usize) -> Result<usize, JsError> {
    if threads == 0 {
        return Err(JsError::new("a thread pool needs at least one thread"));
    }
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .spawn_handler(|thread| {
            handoff()
                .send
                .lock()
                .map_err(|_| std::io::Error::other("the thread handoff was poisoned"))?
                .send(thread)
                .map_err(|_| std::io::Error::other("the thread handoff is closed"))
        })
        .build_global()
        .map_err(|e| JsError::new(&format!("the thread pool was not built: {e}")))?;
    Ok(rayon::current_num_threads())
}
