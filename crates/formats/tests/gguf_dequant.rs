//! Dequantization and metadata against the fixtures `tests/scripts/gen_gguf_fixtures.py`
//! wrote with the `gguf` Python package (whose dequantizers mirror ggml's).

mod common;

use mentalqlm_formats::TensorSource;
use mentalqlm_formats::dequant::{GgmlType, dequantize};
use mentalqlm_formats::gguf::{GgufFile, GgufValue};

fn open_quants() -> GgufFile {
    GgufFile::open(&common::fixture("gguf/quants.gguf")).expect("quants.gguf opens")
}

fn reference_floats() -> Vec<f32> {
    let path = common::fixture("gguf/quants_ref.bin");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

#[test]
fn every_type_matches_the_reference() {
    let file = open_quants();
    let manifest = common::read_json("gguf/quants_ref.json");
    let refs = reference_floats();
    let tensors = manifest["tensors"].as_array().expect("tensors");
    assert_eq!(tensors.len(), 12, "one tensor per type plus f32_3d");
    for t in tensors {
        let name = t["name"].as_str().expect("name");
        let shape: Vec<usize> = t["shape"]
            .as_array()
            .expect("shape")
            .iter()
            .map(|d| d.as_u64().expect("dim") as usize)
            .collect();
        let (offset, count) = (
            t["offset"].as_u64().expect("offset") as usize,
            t["count"].as_u64().expect("count") as usize,
        );
        let expected = &refs[offset..offset + count];

        let info = file.info(name).unwrap_or_else(|| panic!("{name} listed"));
        assert_eq!(
            info.dtype,
            t["type"].as_str().expect("type"),
            "{name} dtype"
        );
        assert_eq!(info.shape, shape, "{name} shape (PyTorch order)");

        let (values, got_shape) = file
            .read_f32(name)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(got_shape, shape, "{name}");
        assert_eq!(values.len(), expected.len(), "{name}");
        let mut max_err = 0.0f32;
        let mut exact = 0;
        for (i, (&a, &b)) in values.iter().zip(expected).enumerate() {
            let err = (a - b).abs();
            assert!(err <= 1e-6, "{name}[{i}]: got {a}, reference {b}");
            max_err = max_err.max(err);
            exact += usize::from(a.to_bits() == b.to_bits());
        }
        // ggml computes each value with the same f32 products as we do: expect bit equality.
        assert_eq!(
            exact,
            values.len(),
            "{name}: {exact}/{} bit-identical, max error {max_err}",
            values.len()
        );
    }
}

#[test]
fn raw_blocks_are_exposed_for_quantized_kernels() {
    let file = open_quants();
    for (name, ty) in [
        ("q8_0", GgmlType::Q8_0),
        ("q4_0", GgmlType::Q4_0),
        ("q4_1", GgmlType::Q4_1),
    ] {
        let raw = file.read_raw(name).expect("raw");
        assert_eq!(raw.ggml_type, ty);
        assert_eq!(raw.dims, &[256, 2]);
        assert_eq!(raw.shape(), vec![2, 256]);
        assert_eq!(
            raw.bytes.len(),
            2 * 8 * ty.type_size(),
            "{name}: 8 blocks of 32 per row"
        );
        // The same bytes dequantize to what read_f32 returns.
        let direct = dequantize(raw.ggml_type, raw.bytes, 512).expect("dequantize");
        assert_eq!(direct, file.read_f32(name).expect("read").0);
    }
}

#[test]
fn header_and_alignment() {
    let file = open_quants();
    assert_eq!(file.version(), 3);
    assert_eq!(file.alignment(), 64, "general.alignment is honoured");
    assert_eq!(file.data_start() % 64, 0);
    assert_eq!(file.architecture().expect("arch"), "test");
    assert_eq!(file.info("f32_3d").expect("f32_3d").shape, vec![2, 3, 4]);
    assert_eq!(
        file.tensor("f32_3d").expect("f32_3d").dims,
        vec![4, 3, 2],
        "GGUF order kept in dims"
    );
    let names = file.tensor_names();
    assert_eq!(names.first().map(String::as_str), Some("f32"), "file order");
}

#[test]
fn metadata_of_every_value_type() {
    let file = open_quants();
    let md = file.metadata();
    assert_eq!(md.get("test.u8"), Some(&GgufValue::U8(200)));
    assert_eq!(md.get("test.i8"), Some(&GgufValue::I8(-100)));
    assert_eq!(md.get("test.u16"), Some(&GgufValue::U16(60000)));
    assert_eq!(md.get("test.i16"), Some(&GgufValue::I16(-30000)));
    assert_eq!(md.get_u32("test.u32").expect("u32"), Some(4_000_000_000));
    assert_eq!(md.get_i64("test.i32").expect("i32"), Some(-2_000_000_000));
    assert_eq!(md.get_f32("test.f32").expect("f32"), Some(1.5));
    assert_eq!(md.get_bool("test.bool").expect("bool"), Some(true));
    assert_eq!(
        md.get_str("test.string").expect("string"),
        Some("h\u{e9}llo \u{1F642}")
    );
    assert_eq!(md.get_u64("test.u64").expect("u64"), Some((1 << 40) + 1));
    assert_eq!(md.get_i64("test.i64").expect("i64"), Some(-(1 << 40)));
    assert_eq!(
        md.get_f64("test.f64").expect("f64"),
        Some(std::f64::consts::PI)
    );
    assert_eq!(
        md.get_i32_array("test.array_i32").expect("i32s"),
        Some(vec![1, -2, 3])
    );
    assert_eq!(
        md.get_f32_array("test.array_f32").expect("f32s"),
        Some(vec![0.5, -0.25])
    );
    assert_eq!(
        md.get_i32_array("test.array_u8").expect("u8s"),
        Some(vec![0, 255, 7])
    );
    let strs = md
        .get_str_array("test.array_str")
        .expect("strs")
        .expect("present");
    assert_eq!(strs, ["a", "bc", "\u{fc}"]);
    let nested = md
        .get_array("test.array_nested")
        .expect("nested")
        .expect("present");
    assert_eq!(nested.len(), 2);
    assert_eq!(format!("{nested:?}"), "Array([I32([1, 2]), I32([3])])");
    let bools = md
        .get("test.array_bool")
        .and_then(|v| v.as_array())
        .expect("bools");
    assert_eq!(format!("{bools:?}"), "Bool([true, false, true])");

    // Absent is None; present with the wrong type is an error naming the key and file.
    assert_eq!(md.get_u32("test.absent").expect("absent"), None);
    let err = md
        .get_u32("test.string")
        .expect_err("string is not u32")
        .to_string();
    assert!(
        err.contains("test.string") && err.contains("quants.gguf"),
        "{err}"
    );
    let err = md
        .get_u32("test.i32")
        .expect_err("negative does not fit u32")
        .to_string();
    assert!(err.contains("-2000000000"), "{err}");
}

#[test]
fn dequantize_rejects_bad_lengths() {
    let bytes = [0u8; 34];
    assert!(dequantize(GgmlType::Q8_0, &bytes, 32).is_ok());
    assert!(
        dequantize(GgmlType::Q8_0, &bytes, 31).is_err(),
        "partial block"
    );
    assert!(
        dequantize(GgmlType::Q8_0, &bytes[..33], 32).is_err(),
        "short buffer"
    );
    assert!(
        dequantize(GgmlType::Q2_K, &[0u8; 84], 256).is_err(),
        "unsupported type"
    );
    for id in 0..64 {
        if let Some(ty) = GgmlType::from_id(id) {
            assert_eq!(ty.id(), id, "{ty} round-trips");
        }
    }
}
