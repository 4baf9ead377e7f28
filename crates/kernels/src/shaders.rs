//! Every WGSL file of `shaders/`, and the one way its `{{ name }}` placeholders are filled.

/// `shaders/lora_forward.wgsl`: the fused LoRA linear forward.
pub const LORA_FORWARD: &str = include_str!("../../../shaders/lora_forward.wgsl");

/// Every shader with a representative set of placeholder values, for validation.
pub fn all_rendered() -> Vec<(&'static str, String)> {
    vec![("lora_forward.wgsl", lora_forward(8))]
}

/// Workgroup-array sizes of the forward kernel for rank `r`.
pub fn lora_forward_sizes(r: usize) -> (usize, usize, usize) {
    let r_max = r.max(1).div_ceil(8) * 8;
    (r_max, r_max * 16, 32 * r_max)
}

/// The forward kernel's text for rank `r`.
pub fn lora_forward(r: usize) -> String {
    let (r_max, a_tile, t_tile) = lora_forward_sizes(r);
    render(
        LORA_FORWARD,
        &[
            ("r_max", r_max.to_string()),
            ("a_tile", a_tile.to_string()),
            ("t_tile", t_tile.to_string()),
        ],
    )
}

/// Replaces each `{{ name }}` by its value.
pub fn render(template: &str, values: &[(&str, String)]) -> String {
    let mut out = template.to_string();
    for (name, value) in values {
        out = out.replace(&format!("{{{{ {name} }}}}"), value);
    }
    out
}
