//! The wasm module behind `web/`: it runs inside a Web Worker (`worker.js`), picks WebGPU or
//! the CPU, builds the model from files handed over as bytes, and classifies. Nothing here
//! makes a network request: the page fetches or reads the files, and the text stays in the
//! worker.
//!
//! Exports take and return plain strings (JSON for structured results), so the JavaScript
//! side needs no generated types beyond the functions.

pub mod session;
#[cfg(threads)]
pub mod threads;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use burn::tensor::Device;
use formats::Folder;
use wasm_bindgen::prelude::*;

use session::{Picked, Session};

#[derive(Default)]
struct State {
    device: Option<(Device, String)>,
    /// WebGPU's largest storage buffer binding, in bytes (none on the CPU).
    max_buffer: Option<u64>,
    /// Files handed over for the next `load`, by part: "model", "adapter", "head",
    /// "explainer", "classifier/<task>".
    staged: BTreeMap<String, Folder>,
    session: Option<Rc<Session>>,
}

thread_local! {
    static STATE: RefCell<State> = RefCell::new(State::default());
}

fn js_err(e: anyhow::Error) -> JsError {
    JsError::new(&format!("{e:#}"))
}

/// Warnings and errors of the libraries (CubeCL logs WebGPU shader errors) go to the
/// browser console, where a panic's message also goes.
struct ConsoleLog;

impl log::Log for ConsoleLog {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::Level::Warn
    }
    fn log(&self, record: &log::Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let _line = format!("{} {}: {}", record.level(), record.target(), record.args());
        #[cfg(target_arch = "wasm32")]
        web_sys::console::error_1(&JsValue::from_str(&_line));
    }
    fn flush(&self) {}
}

#[wasm_bindgen(start)]
pub fn start() {
    #[cfg(target_arch = "wasm32")]
    console_error_panic_hook::set_once();
    if log::set_logger(&ConsoleLog).is_ok() {
        log::set_max_level(log::LevelFilter::Warn);
    }
}

/// Chooses the device: "webgpu", "cpu", or "auto" (WebGPU when the browser gives an
/// adapter, else the CPU), and installs the run-time settings: `settings` holds
/// `NAME=VALUE` lines (the README's table; the page passes those of its address). Returns
/// a description of the backend for the page, with a note for each setting ignored.
#[wasm_bindgen]
pub async fn init(backend: String, settings: String) -> Result<String, JsError> {
    let (settings, notes) = kernels::settings::Settings::from_variables(|name| {
        settings.lines().find_map(|line| {
            let (key, value) = line.split_once('=')?;
            (key.trim() == name).then(|| value.trim().to_string())
        })
    });
    kernels::settings::install(settings);
    let cpu = |why: String| (Device::flex(), format!("cpu (Burn flex, wasm{why})"), None);
    let (device, description, max_buffer) = match backend.as_str() {
        "cpu" => cpu(String::new()),
        "webgpu" => webgpu().await.map_err(js_err)?.chosen,
        // WebGPU is not in the threaded module: worker.js loads web/pkg wherever the browser
        // gives an adapter, and asks this one for `auto` only where it gives none.
        #[cfg(threads)]
        "auto" => cpu("; no WebGPU: this browser gives no adapter".to_string()),
        #[cfg(not(threads))]
        // As the CLI's `auto`: a software adapter (SwiftShader, llvmpipe) is passed over,
        // because Burn's CPU backend is much faster than it.
        "auto" => match webgpu().await {
            Ok(gpu) if !gpu.software => gpu.chosen,
            Ok(gpu) => cpu(format!(
                "; the WebGPU adapter ({}) is a software one, slower than the CPU",
                gpu.name
            )),
            Err(e) => cpu(format!("; no WebGPU: {e:#}")),
        },
        other => {
            return Err(JsError::new(&format!(
                "unknown backend `{other}` (webgpu, cpu or auto)"
            )));
        }
    };
    let description = if notes.is_empty() {
        description
    } else {
        format!("{description}; {}", notes.join("; "))
    };
    STATE.with_borrow_mut(|s| {
        s.device = Some((device, description.clone()));
        s.max_buffer = max_buffer;
        s.session = None;
    });
    Ok(description)
}

// The threaded module never finds an adapter (it has no WebGPU).
#[cfg_attr(threads, allow(dead_code))]
struct WebGpu {
    /// The device, its description for the page, and its largest storage buffer.
    chosen: (Device, String, Option<u64>),
    name: String,
    /// A CPU adapter: WebGPU emulated in software.
    software: bool,
}

#[cfg(threads)]
async fn webgpu() -> anyhow::Result<WebGpu> {
    anyhow::bail!("this module was built with wasm threads, which leave WebGPU out: load web/pkg")
}

#[cfg(not(threads))]
async fn webgpu() -> anyhow::Result<WebGpu> {
    let (device, setup) = Device::wgpu_options()
        .init_with_setup_async()
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let info = setup.adapter.get_info();
    let name = if info.name.is_empty() {
        "unnamed adapter".to_string()
    } else {
        info.name
    };
    // CubeCL 0.11's matmul reads the subgroup size, and in a browser that needs WebGPU's
    // `subgroups` feature on the device; without it every matmul shader is rejected. wgpu 30
    // neither asks for that feature nor reports it, so worker.js asks for it and records in
    // `mentalqlmSubgroups` whether the device got it.
    if !device_has_subgroups() {
        anyhow::bail!(
            "this browser's WebGPU adapter ({name}) lacks the `subgroups` feature that Burn's \
             matmul needs in a browser; use the CPU backend"
        );
    }
    let limits = setup.device.limits();
    let buffers = limits.max_storage_buffers_per_shader_stage as usize;
    if buffers < kernels::shaders::STORAGE_BUFFERS {
        anyhow::bail!(
            "this browser's WebGPU adapter ({name}) binds {buffers} storage buffers per shader, \
             and our LoRA kernels need {}; use the CPU backend",
            kernels::shaders::STORAGE_BUFFERS
        );
    }
    let max_buffer = limits
        .max_storage_buffer_binding_size
        .min(limits.max_buffer_size);
    Ok(WebGpu {
        chosen: (
            device,
            format!("webgpu ({name}, {:?})", info.device_type),
            Some(max_buffer),
        ),
        software: info.device_type == burn::tensor::wgpu::wgpu::DeviceType::Cpu,
        name,
    })
}

/// Whether the WebGPU device was created with `subgroups` (set by worker.js's wrapper of
/// `GPUAdapter.requestDevice`; false where that wrapper did not run).
#[cfg(not(threads))]
fn device_has_subgroups() -> bool {
    js_sys::Reflect::get(&js_sys::global(), &JsValue::from_str("mentalqlmSubgroups"))
        .ok()
        .and_then(|v| v.as_bool())
        .unwrap_or(false)
}

/// Hands one file to the next `load`. `part` is "model", "adapter", "head", "explainer" (the
/// shipped explainer: `explainer.json` and its PEFT adapter), or "classifier/<task>" for a
/// trained head-only classifier (`classifier.json`, `probe.safetensors`); `name` is the
/// file's own name (`config.json`, `model.gguf`, ...).
#[wasm_bindgen]
pub fn add_file(part: &str, name: &str, bytes: Vec<u8>) -> Result<(), JsError> {
    let classifier = part
        .strip_prefix("classifier/")
        .is_some_and(|task| !task.is_empty());
    if !(classifier || matches!(part, "model" | "adapter" | "head" | "explainer")) {
        return Err(JsError::new(&format!(
            "unknown part `{part}` (model, adapter, head, explainer or classifier/<task>)"
        )));
    }
    STATE.with_borrow_mut(|s| {
        s.staged
            .entry(part.to_string())
            .or_insert_with(|| Folder::memory(format!("{part} files")))
            .insert(name, bytes)
            .map_err(|e| js_err(e.into()))
    })
}

/// Forgets staged files and the loaded model.
#[wasm_bindgen]
pub fn clear() {
    STATE.with_borrow_mut(|s| {
        s.staged.clear();
        s.session = None;
    });
}

/// Builds the model from the staged files (which are then released). Returns JSON
/// describing the model. `on_step(done, total)`, when given, is called as the build goes:
/// the embedding table, each layer, then the head.
#[wasm_bindgen]
pub fn load(on_step: Option<js_sys::Function>) -> Result<String, JsError> {
    let (device, max_buffer, staged) = STATE.with_borrow_mut(|s| {
        let device = s.device.as_ref().map(|(d, _)| d.clone());
        (device, s.max_buffer, std::mem::take(&mut s.staged))
    });
    let device = device.ok_or_else(|| JsError::new("call init() before load()"))?;
    let mut staged = staged;
    let model = staged
        .remove("model")
        .ok_or_else(|| JsError::new("no model file was given"))?;
    let picked = Picked {
        model,
        adapter: staged.remove("adapter"),
        head: staged.remove("head"),
        explainer: staged.remove("explainer"),
        classifiers: staged
            .into_iter()
            .filter(|(part, _)| part.starts_with("classifier/"))
            .map(|(_, folder)| folder)
            .collect(),
    };
    let report = |done: usize, total: usize| {
        if let Some(f) = &on_step {
            let _ = f.call2(
                &JsValue::NULL,
                &JsValue::from(done as u32),
                &JsValue::from(total as u32),
            );
        }
    };
    let progress = model::BuildProgress(&report);
    let session = Session::load(&picked, &device, max_buffer, Some(progress)).map_err(js_err)?;
    let info = serde_json::to_string(&session.info).map_err(|e| js_err(e.into()))?;
    STATE.with_borrow_mut(|s| s.session = Some(Rc::new(session)));
    Ok(info)
}

fn session() -> Result<Rc<Session>, JsError> {
    STATE
        .with_borrow(|s| s.session.clone())
        .ok_or_else(|| JsError::new("no model is loaded"))
}

/// Classifies `text` for `task` (DR, dreaddit, Irf, MultiWD, SAD, DEP-SEVERITY). Returns
/// JSON: label, labels, probabilities, method ("head", "probe" or "choice": untuned),
/// classifier.
#[wasm_bindgen]
pub async fn classify(task: String, text: String) -> Result<String, JsError> {
    let session = session()?;
    let out = session.classify(&task, &text).await.map_err(js_err)?;
    serde_json::to_string(&out).map_err(|e| js_err(e.into()))
}

/// The model's answer with its reasoning, greedy, at most `max_new_tokens` tokens;
/// `on_text(text_so_far)` is called after every token. With `label` (the label index the
/// classifier chose), the answer states that label and the model explains it, so the two
/// never contradict each other.
#[wasm_bindgen]
pub async fn explain(
    task: String,
    text: String,
    label: Option<usize>,
    max_new_tokens: usize,
    on_text: js_sys::Function,
) -> Result<String, JsError> {
    let session = session()?;
    session
        .explain(&task, &text, label, max_new_tokens, |so_far| {
            let _ = on_text.call1(&JsValue::NULL, &JsValue::from_str(so_far));
        })
        .await
        .map_err(js_err)
}
