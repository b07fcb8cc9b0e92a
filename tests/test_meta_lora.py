"""LoRA inner loops: exact second-order MAML through peft adapters (finite differences in float64), the outer
loop on adapters only or on all weights, and LoRA checkpoints (merged weights + PEFT adapter) end to end."""

from __future__ import annotations

import json

import pytest
import torch

from metanmt.meta import Episode, MetaConfig, MetaLearner
from metanmt.models.lora import LORA_PATTERNS, LoraSettings, add_lora, is_lora
from metanmt.tasks.translation import seq2seq_loss
from tests.test_pretrained import pretrained, run, write_config


def tiny_lora_marian(train_base: bool):
    """A float64 Marian of d_model 8 with rank-2 adapters whose B is not zero (peft starts B at zero, where
    the meta-gradient of A vanishes and would test nothing); eager attention has a double backward."""
    from transformers import MarianConfig, MarianMTModel

    torch.manual_seed(0)
    config = MarianConfig(vocab_size=20, d_model=8, encoder_layers=1, decoder_layers=1,
                          encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=16,
                          decoder_ffn_dim=16, dropout=0.0, max_position_embeddings=16, pad_token_id=0,
                          eos_token_id=1, decoder_start_token_id=0, attn_implementation="eager")
    model = add_lora(MarianMTModel(config), LoraSettings(r=2, target_modules=["q_proj", "v_proj"]), None,
                     train_base=train_base)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.3)
    return model.double()


def episodes() -> list[Episode]:
    g = torch.Generator().manual_seed(1)

    def batch():
        src = torch.randint(2, 20, (3, 5), generator=g)
        return {"input_ids": src, "attention_mask": torch.ones_like(src),
                "labels": src.flip(1)[:, :4].clone()}

    return [Episode(support=batch(), query=batch(), task=f"t{i}") for i in range(2)]


def objective(learner: MetaLearner, eps: list[Episode]) -> float:
    """The mean post-adaptation query loss, through adapt(): what MAML differentiates."""
    return sum(float(seq2seq_loss(learner.adapt(ep.support), ep.query).detach()) for ep in eps) / len(eps)


@pytest.mark.parametrize("train_base, recompute", [(False, False), (True, False), (True, True)],
                         ids=["adapters", "adapters_and_base", "adapters_and_base_recomputed"])
def test_maml_through_lora_matches_finite_differences(train_base, recompute):
    model = tiny_lora_marian(train_base)
    learner = MetaLearner(model, seq2seq_loss, MetaConfig(algorithm="maml", inner_steps=2, inner_lr=0.5,
                                                          fast_params=LORA_PATTERNS, recompute=recompute))
    assert all(".lora_" in name for name in learner.fast_names)
    eps = episodes()
    learner.accumulate_meta_gradients(eps)
    names = [name for name, p in model.named_parameters() if p.requires_grad]
    assert any(".lora_" not in name for name in names) == train_base
    assert not any("embed_positions" in name for name in names)  # Marian's sinusoidal table stays fixed
    outer = [p for p in model.parameters() if p.requires_grad]
    g = torch.Generator().manual_seed(2)
    h = 1e-6
    for _ in range(3):  # directional derivatives along random directions of all outer parameters
        direction = [torch.randn(p.shape, generator=g, dtype=p.dtype) for p in outer]
        # nn.Embedding's padding_idx row gets no gradient by design, but Marian starts decoding from the pad
        # token, so the loss does depend on that row: leave it out of the finite differences
        direction = [d.index_fill(0, torch.tensor([0]), 0.0) if "shared" in name else d
                     for name, d in zip(names, direction)]
        values = []
        for sign in (1, -1):
            with torch.no_grad():
                for p, d in zip(outer, direction):
                    p.add_(sign * h * d)
            values.append(objective(learner, eps))
            with torch.no_grad():
                for p, d in zip(outer, direction):
                    p.sub_(sign * h * d)
        numeric = (values[0] - values[1]) / (2 * h)
        analytic = sum(float((p.grad * d).sum()) for p, d in zip(outer, direction))
        assert analytic == pytest.approx(numeric, rel=1e-5, abs=1e-8)


def test_fomaml_through_lora_differs_from_maml():
    grads = {}
    for algorithm in ("maml", "fomaml"):
        model = tiny_lora_marian(train_base=False)
        learner = MetaLearner(model, seq2seq_loss, MetaConfig(algorithm=algorithm, inner_steps=1,
                                                              inner_lr=0.5, fast_params=LORA_PATTERNS))
        learner.accumulate_meta_gradients(episodes())
        grads[algorithm] = torch.cat([p.grad.reshape(-1) for p in model.parameters() if p.requires_grad])
    assert (grads["maml"] - grads["fomaml"]).norm() > 1e-3 * grads["fomaml"].norm()


def test_lora_meta_training_and_finetuning_save_merged_weights_and_the_adapter(tmp_path):
    from transformers import AutoModelForSeq2SeqLM

    from metanmt.models.seq2seq import load_checkpoint
    from tests.test_pretrained import LANGS, synthetic_pairs

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for lang in [lang for group in LANGS.values() for lang in group]:
        (corpus / f"{lang}.tsv").write_text("".join(f"{s}\t{t}\n" for s, t in synthetic_pairs(lang)))
    lora = {"fast_params": "lora", "algorithm": "maml", "lora": {"r": 4, "alpha": 8}}
    config = write_config(tmp_path / "cfg.yaml", corpus, pretrained("mbart50", tmp_path / "base"),
                          meta=lora, finetune={"params": "lora"})
    run("prepare", "--config", config, "--output-dir", tmp_path / "data")
    run("meta-train", "--config", config, "--data", tmp_path / "data", "--output-dir", tmp_path / "run",
        "--no-progress")
    adapter = json.loads((tmp_path / "run" / "best" / "adapter" / "adapter_config.json").read_text())
    assert adapter["r"] == 4 and sorted(adapter["target_modules"]) == ["q_proj", "v_proj"]
    # loading rebuilds the meta-learned adapter on the pretrained weights (outer_params: adapters kept them)
    meta, _, _ = load_checkpoint(tmp_path / "run" / "best")
    base = AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "base" / "model").state_dict()
    for name, weight in meta.get_base_model().state_dict().items():
        if "lora_B" in name:
            assert weight.abs().sum() > 0, name  # moved away from peft's zero start
        elif ".lora_" not in name:
            assert torch.allclose(weight, base[name.replace(".base_layer", "")], atol=1e-6), name
    run("finetune", "--model", tmp_path / "run" / "best", "--lang", "fi", "--tokens", 100, "--params", "lora",
        "--output-dir", tmp_path / "ft")
    model, tokenizer, info = load_checkpoint(tmp_path / "ft")
    assert is_lora(model) and info["params"] == "lora"
    plain = AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "ft")  # the merged weights, no peft needed
    batch = tokenizer(["eht tacfi"], text_target=["The cat."], return_tensors="pt")
    model.eval()
    plain.eval()
    with torch.no_grad():
        assert torch.allclose(model(**batch).logits, plain(**batch).logits, atol=1e-5)


def test_micro_batched_maml_through_lora_weights_pieces_by_target_tokens():
    """Second-order MAML through LoRA with each batch in one-sentence pieces of 4, 2 and 3 target tokens:
    weighted by their target tokens (the translation trainer's batch_weight), the pieces give the whole
    batch's meta-gradient, base weights included; weighted by rows they would not."""
    from metanmt.tasks.translation import IGNORE_INDEX, target_tokens

    eps = episodes()
    for ep in eps:
        for batch in (ep.support, ep.query):
            batch["labels"][1, 2:] = IGNORE_INDEX
            batch["labels"][2, 3:] = IGNORE_INDEX
    grads = {}
    for pieces, weight, keep in ((1, target_tokens, 0), (3, target_tokens, 0), (3, None, 0),
                                 (3, target_tokens, 2)):
        model = tiny_lora_marian(train_base=True)
        config = MetaConfig(algorithm="maml", inner_steps=2, inner_lr=0.5, fast_params=LORA_PATTERNS,
                            recompute=True, micro_batches=pieces, keep_pieces=keep)
        learner = MetaLearner(model, seq2seq_loss, config, **({"batch_weight": weight} if weight else {}))
        learner.accumulate_meta_gradients(eps)
        grads[pieces, weight, keep] = torch.cat([p.grad.reshape(-1) for p in model.parameters()
                                                 if p.requires_grad])
    whole = grads[1, target_tokens, 0]
    torch.testing.assert_close(grads[3, target_tokens, 0], whole, rtol=1e-10, atol=1e-13)
    torch.testing.assert_close(grads[3, target_tokens, 2], whole, rtol=1e-10, atol=1e-13)  # 2 pieces kept
    assert not torch.allclose(grads[3, None, 0], whole, rtol=1e-4)
