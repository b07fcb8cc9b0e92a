"""The chunked cross-entropy (metanmt.models.chunked_loss): the value, gradient and second derivative of
F.cross_entropy (float64 finite differences), HF's own loss on every family it serves, and the same MAML
meta-gradient as HF's loss through LoRA adapters."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from metanmt.errors import MetaNMTError
from metanmt.meta import MetaConfig, MetaLearner
from metanmt.models.chunked_loss import ChunkedSeq2SeqLoss, linear_cross_entropy
from metanmt.models.lora import LORA_PATTERNS
from metanmt.tasks.translation import seq2seq_loss
from tests.test_meta_lora import episodes, tiny_lora_marian

SIZES = {"vocab_size": 20, "d_model": 8, "encoder_layers": 1, "decoder_layers": 1,
         "encoder_attention_heads": 2, "decoder_attention_heads": 2, "encoder_ffn_dim": 16,
         "decoder_ffn_dim": 16, "dropout": 0.0, "attention_dropout": 0.0, "activation_dropout": 0.0,
         "encoder_layerdrop": 0.0, "decoder_layerdrop": 0.0, "max_position_embeddings": 16,
         "attn_implementation": "eager"}


def projection(bias: bool):
    g = torch.Generator().manual_seed(0)
    hidden = torch.randn(7, 5, generator=g, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(11, 5, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(11, generator=g, dtype=torch.float64, requires_grad=True) if bias else None
    labels = torch.randint(0, 11, (7,), generator=g)
    labels[2] = -100  # padding: not counted
    return hidden, weight, b, labels


@pytest.mark.parametrize("bias", [True, False])
def test_value_gradient_and_second_derivative_are_those_of_cross_entropy(bias):
    hidden, weight, b, labels = projection(bias)
    inputs = (hidden, weight, *([b] if bias else []))

    def chunked(h, w, *rest):  # 3 rows a chunk: 7 rows make two full chunks and a partial one
        return linear_cross_entropy(h, w, rest[0] if rest else None, labels, chunk_rows=3)

    reference = F.cross_entropy(hidden @ weight.T + (b if bias else 0), labels)
    assert float(chunked(*inputs).detach()) == pytest.approx(float(reference.detach()), rel=1e-14)
    assert torch.autograd.gradcheck(chunked, inputs)
    assert torch.autograd.gradgradcheck(chunked, inputs)
    frozen = weight.detach()  # LoRA: the output projection is not trained, only the states move
    assert torch.autograd.gradgradcheck(lambda h: linear_cross_entropy(h, frozen, None, labels, 2), (hidden,))


def tiny(family: str):
    import transformers

    torch.manual_seed(0)
    ids = {"pad_token_id": 1, "eos_token_id": 2, "decoder_start_token_id": 2}
    config_class, model_class = {"marian": ("MarianConfig", "MarianMTModel"),
                                 "m2m100": ("M2M100Config", "M2M100ForConditionalGeneration"),
                                 "mbart": ("MBartConfig", "MBartForConditionalGeneration")}[family]
    config = getattr(transformers, config_class)(**SIZES, **ids)
    model = getattr(transformers, model_class)(config).double()
    if hasattr(model, "final_logits_bias"):  # zeros when built: make it count
        model.final_logits_bias.normal_()
    return model


@pytest.mark.parametrize("family", ["marian", "m2m100", "mbart"])
def test_equals_the_models_own_loss_and_gradient(family):
    model, batch = tiny(family), episodes()[0].query
    params = [p for p in model.parameters() if p.requires_grad]
    hf = model(**batch).loss
    hf_grads = torch.autograd.grad(hf, params, allow_unused=True)
    chunked = ChunkedSeq2SeqLoss(model)(model, batch)
    grads = torch.autograd.grad(chunked, params, allow_unused=True)
    assert float(chunked.detach()) == pytest.approx(float(hf.detach()), rel=1e-13)
    for a, b in zip(hf_grads, grads, strict=True):
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("train_base", [False, True])
def test_maml_meta_gradient_through_lora_equals_that_of_hf_loss(train_base):
    """HF's loss gives the finite-difference meta-gradient (test_meta_lora); the chunked one must equal it."""
    grads = {}
    for name in ("hf", "chunked"):
        model = tiny_lora_marian(train_base)
        with torch.no_grad():
            model.get_base_model().final_logits_bias.normal_(generator=torch.Generator().manual_seed(3))
        loss_fn = seq2seq_loss if name == "hf" else ChunkedSeq2SeqLoss(model)
        learner = MetaLearner(model, loss_fn, MetaConfig(algorithm="maml", inner_steps=2, inner_lr=0.5,
                                                         fast_params=LORA_PATTERNS))
        learner.accumulate_meta_gradients(episodes())
        grads[name] = torch.cat([p.grad.reshape(-1) for p in model.parameters() if p.requires_grad])
    assert grads["hf"].abs().max() > 1e-4  # a meta-gradient that tests something
    torch.testing.assert_close(grads["chunked"], grads["hf"], rtol=1e-10, atol=1e-14)


def test_t5_is_refused_with_the_reason():
    from transformers import T5Config, T5ForConditionalGeneration

    model = T5ForConditionalGeneration(T5Config(vocab_size=20, d_model=8, d_kv=4, d_ff=16, num_layers=1,
                                                num_heads=2))
    with pytest.raises(MetaNMTError, match="T5ForConditionalGeneration"):
        ChunkedSeq2SeqLoss(model)
