"""The model card (``README.md``) of a checkpoint fine-tuned on the user's data: what a person who receives
the directory needs to trust and reuse it (base model, language, data size and hash, decoding, command)."""

from __future__ import annotations

from typing import Any


def model_card(info: dict[str, Any]) -> str:
    """Markdown with Hugging Face front matter, from the checkpoint's ``metanmt.json`` record."""
    data, lang, tuned = info["data"], info["lang"], info.get("finetune", {})
    subset = (f"{data['max_tokens']:,} English tokens drawn with seed {data['seed']}" if data["max_tokens"]
              else "all pairs")
    rows = [("base model", f"`{info['base_model']}`"),
            ("source language", f"`{lang}` (target: English)"),
            ("training data", (f"{data['pairs']:,} pairs, {data['en_tokens']:,} English tokens "
                               f"(sacrebleu 13a), from `{data['train']}`")),
            ("training data sha256", f"`{data['sha256']}` (lines `source<TAB>English`, UTF-8)"),
            ("subset", subset),
            ("dev data", f"{data['dev_pairs']:,} pairs: {data['dev']}"),
            ("fine-tuning", (f"parameters `{info['params']}`, {tuned.get('steps', 0)} steps (best at "
                             f"{tuned.get('best_step', 0)}), lr {tuned.get('lr')}"))]
    generate = ('print(tokenizer.batch_decode(model.generate(**tokenizer(["..."], return_tensors="pt")), '
                "skip_special_tokens=True))")
    return "\n".join([
        "---", f"language: [{lang.split('-')[0].lower()}, en]", "pipeline_tag: translation",
        "library_name: transformers", "tags: [metanmt, translation]", "---", "",
        f"# {lang} → English, fine-tuned with metanmt", "",
        "| | |", "|---|---|", *(f"| {k} | {_cell(v)} |" for k, v in rows), "",
        "## Decoding", "",
        "`generation_config.json` holds the decoding of `metanmt translate` (beam 4, length penalty 0.6):",
        "",
        "```python", "from transformers import AutoModelForSeq2SeqLM, AutoTokenizer", "",
        'model = AutoModelForSeq2SeqLM.from_pretrained("THIS_DIR")',
        'tokenizer = AutoTokenizer.from_pretrained("THIS_DIR")', generate, "```", "",
        "## Made by", "", "```", info.get("command") or "(not recorded)", "```", "",
    ])


def _cell(text: str) -> str:
    """A table cell: a ``|`` (as in ``a.ast | a.en``) would otherwise end the cell, even inside backticks."""
    return text.replace("|", "\\|")
