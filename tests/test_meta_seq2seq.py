"""The core on an HF Marian transformer: second-order MAML through attention, tied embeddings."""

from __future__ import annotations

import pytest
import torch

from metanmt.errors import MetaNMTError
from metanmt.meta import Episode, MetaConfig, MetaLearner
from metanmt.models.seq2seq import build_model
from metanmt.tasks.translation import seq2seq_loss


def toy_episode(seed: int, vocab: int = 50) -> Episode:
    g = torch.Generator().manual_seed(seed)

    def batch():
        src = torch.randint(3, vocab, (4, 7), generator=g)
        labels = torch.flip(src, dims=[1])[:, :5].clone()
        labels[:, -1] = 1
        return {"input_ids": src, "attention_mask": torch.ones_like(src), "labels": labels}

    return Episode(support=batch(), query=batch(), task=f"toy{seed}")


def meta_grad(algorithm: str) -> torch.Tensor:
    torch.manual_seed(0)
    model = build_model("tiny", vocab_size=50, dropout=0.0)  # default SDPA attention: the core picks math
    learner = MetaLearner(model, seq2seq_loss, MetaConfig(algorithm=algorithm, inner_steps=1, inner_lr=0.5))
    result = learner.accumulate_meta_gradients([toy_episode(1), toy_episode(2)])
    assert result.tasks == 2 and result.loss > 0
    return torch.cat([p.grad.reshape(-1) for p in model.parameters() if p.requires_grad])


def test_second_order_maml_on_marian_is_finite_and_differs_from_fomaml():
    maml, fomaml = meta_grad("maml"), meta_grad("fomaml")
    assert torch.isfinite(maml).all() and maml.norm() > 0
    rel = (maml - fomaml).norm() / fomaml.norm()
    assert rel > 1e-3, rel


def test_embedding_and_encoder_adaptation_keeps_decoder_fixed():
    torch.manual_seed(0)
    model = build_model("tiny", vocab_size=50, dropout=0.0)
    learner = MetaLearner(model, seq2seq_loss,
                          MetaConfig(inner_steps=2, inner_lr=0.5,
                                     fast_params=("model.shared.*", "model.encoder.*")))
    adapted = learner.adapt(toy_episode(3).support)
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        moved = not torch.equal(adapted.params[name], p.detach())
        assert moved == name.startswith(("model.shared", "model.encoder")), name
    # the tied output projection follows the adapted shared embedding
    module = adapted.to_module()
    assert torch.equal(module.lm_head.weight, adapted.params["model.shared.weight"])


def test_adapted_forward_swaps_tied_weights_under_every_name_and_own_tensors_not_at_all():
    """The learner's cheaper swap (``tensors_to_swap`` + ``tie_weights=False``) runs the model exactly as
    ``functional_call`` with ``tie_weights=True`` does: the adapted shared embedding also in the encoder,
    decoder and output projection; the module's own tensors are left where they are."""
    from torch.func import functional_call

    from metanmt.meta.params import tensors_to_swap

    torch.manual_seed(0)
    model = build_model("tiny", vocab_size=50, dropout=0.0)
    learner = MetaLearner(model, seq2seq_loss, MetaConfig(inner_steps=1, inner_lr=0.5,
                                                          fast_params=("model.shared.*", "model.decoder.*")))
    adapted = learner.adapt(toy_episode(4).support)
    own = dict(model.named_parameters())
    swap = tensors_to_swap(model, adapted.params, dict(model.named_buffers()))
    tied = {"model.shared.weight", "model.encoder.embed_tokens.weight", "model.decoder.embed_tokens.weight",
            "lm_head.weight"}
    assert tied <= set(swap) and all(swap[n] is adapted.params["model.shared.weight"] for n in tied)
    assert not any(n.startswith("model.encoder.layers") for n in swap)  # not adapted: the module's own
    assert tensors_to_swap(model, own, dict(model.named_buffers())) == {}
    batch = toy_episode(5).query
    expected = functional_call(model, (adapted.params, dict(model.named_buffers())), (), batch).loss
    assert torch.equal(adapted(**batch).loss, expected)
    assert not torch.equal(model(**batch).loss, expected)


def test_marian_cannot_be_batched_and_says_so():
    """The HF transformer has data-dependent control flow: its tasks run one by one ("auto" on any device);
    asking for batched tasks is a clear error."""
    torch.manual_seed(0)
    model = build_model("tiny", vocab_size=50, dropout=0.0)
    learner = MetaLearner(model, seq2seq_loss, MetaConfig(inner_steps=1, inner_lr=0.5, batch_tasks=True))
    with pytest.raises(MetaNMTError, match="cannot run its tasks together under torch.func.vmap"):
        learner.accumulate_meta_gradients([toy_episode(1), toy_episode(2)])


def test_fomaml_with_the_tied_embedding_outside_the_inner_loop_matches_a_hand_computed_step():
    """The quickstart's setting (``fast_params`` on the layers, inner Adam): the inner step moves the layers
    only, and the meta-gradient is the query gradient at the adapted weights for every weight, the tied
    embedding's (used by encoder, decoder and output projection) included."""
    import copy

    torch.manual_seed(0)
    model = build_model("tiny", vocab_size=50, dropout=0.0).double()
    episode = toy_episode(6)
    config = MetaConfig(algorithm="fomaml", inner_steps=1, inner_lr=0.01, inner_optimizer="adam",
                        fast_params=("model.*.layers.*",))
    MetaLearner(model, seq2seq_loss, config).accumulate_meta_gradients([episode])

    reference = copy.deepcopy(model)
    reference.zero_grad(set_to_none=True)
    layers = {n: p for n, p in reference.named_parameters() if ".layers." in n}
    grads = torch.autograd.grad(reference(**episode.support).loss, list(layers.values()))
    with torch.no_grad():  # Adam's first step: lr * g / sqrt(g^2 + eps^2) (metanmt.meta.inner_optim)
        for p, g in zip(layers.values(), grads):
            p -= 0.01 * g / torch.sqrt(g * g + 1e-16)
    reference(**episode.query).loss.backward()
    got, want = dict(model.named_parameters()), dict(reference.named_parameters())
    assert "model.shared.weight" in got and got["model.shared.weight"].grad.norm() > 0
    for name, p in got.items():
        if p.requires_grad:
            torch.testing.assert_close(p.grad, want[name].grad, rtol=1e-9, atol=1e-12, msg=name)
