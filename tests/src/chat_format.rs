//! Llama-2 chat prompts: rendered as transformers' `apply_chat_template` renders
//! Llama-2-chat's template, and tokenized by the SentencePiece reader to its ids
//! (`tests/scripts/gen_spm_fixtures.py`); the format is read from the model's template.

use data::{ChatFormat, ChatTemplate};
use formats::Folder;
use formats::tokenizer::TextTokenizer;

use crate::fixture;

fn spm_folder(tag: &str, template: Option<&str>) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("mentalqlm-chat-{tag}-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(fixture("spm/bpe.model"), dir.join("tokenizer.model")).unwrap();
    if let Some(t) = template {
        let config = serde_json::json!({ "chat_template": t, "legacy": true });
        std::fs::write(dir.join("tokenizer_config.json"), config.to_string()).unwrap();
    }
    dir
}

#[test]
fn llama2_prompts_equal_apply_chat_template() {
    let reference: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixture("spm/expected.json")).unwrap()).unwrap();
    let template_text = reference["llama2_chat_template"].as_str().unwrap();
    let dir = spm_folder("render", Some(template_text));
    let tok = TextTokenizer::from_folder(&Folder::disk(&dir))
        .unwrap()
        .unwrap();
    assert_eq!(tok.chat_template.as_deref(), Some(template_text));
    let format = ChatFormat::from_template(template_text).unwrap();
    assert_eq!(format, ChatFormat::Llama2);
    let rows = reference["llama2_chat"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    for row in rows {
        let messages: Vec<(&str, &str)> = row["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| (m["role"].as_str().unwrap(), m["content"].as_str().unwrap()))
            .collect();
        // No system message: transformers' template writes no <<SYS>> block, so neither
        // does a template with an empty system prompt.
        let template = ChatTemplate::new("").with_format(format);
        let text = template.conversation(&messages);
        assert_eq!(text, row["text"].as_str().unwrap());
        let want: Vec<u32> = row["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as u32)
            .collect();
        assert_eq!(tok.encode(&text).unwrap(), want, "{text:?}");
    }
    // One user message with the template's own system prompt is `prompt`.
    let with_system = ChatTemplate::new("You are a helpful assistant.").with_format(format);
    let query = rows[0]["messages"][1]["content"].as_str().unwrap();
    assert_eq!(with_system.prompt(query), rows[0]["text"].as_str().unwrap());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn chat_templates_are_read_from_the_folder_and_broken_configs_named() {
    // chat_template.jinja wins over tokenizer_config.json, as in transformers.
    let dir = spm_folder("jinja", Some("{{ '<|im_start|>' }}"));
    std::fs::write(dir.join("chat_template.jinja"), "{{ '[INST]' }}").unwrap();
    let tok = TextTokenizer::from_folder(&Folder::disk(&dir))
        .unwrap()
        .unwrap();
    assert_eq!(tok.chat_template.as_deref(), Some("{{ '[INST]' }}"));

    // A list of named templates: the one named `default`.
    std::fs::remove_file(dir.join("chat_template.jinja")).unwrap();
    let config = serde_json::json!({ "chat_template": [
        { "name": "tool_use", "template": "x" },
        { "name": "default", "template": "{{ '<|im_start|>' }}" },
    ] });
    std::fs::write(dir.join("tokenizer_config.json"), config.to_string()).unwrap();
    let tok = TextTokenizer::from_folder(&Folder::disk(&dir))
        .unwrap()
        .unwrap();
    assert_eq!(
        ChatFormat::from_template(tok.chat_template.as_deref().unwrap()),
        Some(ChatFormat::ChatMl)
    );

    // No template at all.
    std::fs::write(dir.join("tokenizer_config.json"), "{}").unwrap();
    let tok = TextTokenizer::from_folder(&Folder::disk(&dir))
        .unwrap()
        .unwrap();
    assert_eq!(tok.chat_template, None);

    // Broken: not JSON, a template of the wrong type.
    for (bytes, want) in [
        (&b"{not json"[..], "tokenizer_config.json"),
        (&br#"{"chat_template": 7}"#[..], "chat_template"),
    ] {
        std::fs::write(dir.join("tokenizer_config.json"), bytes).unwrap();
        let err = TextTokenizer::from_folder(&Folder::disk(&dir))
            .err()
            .expect("an error")
            .to_string();
        assert!(
            err.contains(want) && err.contains("tokenizer_config.json"),
            "{err}"
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn the_chat_format_comes_from_the_template_else_the_vocabulary_else_the_model_type() {
    use classify::FormatSource;
    use model::config::ModelType;
    let spm = |template: Option<&str>| {
        let dir = spm_folder("choose", template);
        let tok = TextTokenizer::from_folder(&Folder::disk(&dir))
            .unwrap()
            .unwrap();
        std::fs::remove_dir_all(&dir).ok();
        tok
    };
    let llama2 = "{{ bos_token + '[INST] ' + content + ' [/INST]' }}";
    assert_eq!(
        classify::chat_format(ModelType::Qwen2, &spm(Some(llama2))),
        (ChatFormat::Llama2, FormatSource::Template)
    );
    // No template: a SentencePiece Llama vocabulary has no <|im_start|>.
    let (format, source) = classify::chat_format(ModelType::Llama, &spm(None));
    assert_eq!(format, ChatFormat::Llama2);
    assert!(
        matches!(&source, FormatSource::Fallback(w) if w.contains("no chat template") && w.contains("model_type llama")),
        "{source:?}"
    );
    let (format, source) = classify::chat_format(ModelType::Qwen2, &spm(Some("{{ messages }}")));
    assert_eq!(format, ChatFormat::ChatMl);
    assert!(
        matches!(&source, FormatSource::Fallback(w) if w.contains("neither ChatML nor Llama-2")),
        "{source:?}"
    );
    // The tiny ChatML vocabulary without a template: ChatML, by its <|im_start|>.
    let tiny = TextTokenizer::from_folder(&Folder::disk(fixture("tiny/llama")))
        .unwrap()
        .unwrap();
    let (format, source) = classify::chat_format(ModelType::Llama, &tiny);
    assert_eq!(format, ChatFormat::ChatMl);
    assert!(
        matches!(&source, FormatSource::Fallback(w) if w.contains("<|im_start|>")),
        "{source:?}"
    );
}
