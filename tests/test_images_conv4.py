"""Conv-4 backbones: output sizes of the published variants, and meta-learning through them with the core."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from metanmt.meta import Episode, MetaConfig, MetaLearner
from metanmt.models.conv4 import Conv4, finn_adapted, init_like_finn

OMNIGLOT, MINI = {"in_channels": 1, "image_size": 28}, {"in_channels": 3, "image_size": 84}


@pytest.mark.parametrize("kwargs, shape, features", [
    ({**OMNIGLOT, "hidden": 64, "pool": "stride", "num_classes": 5}, (2, 1, 28, 28), 5),  # MAML Omniglot
    ({**OMNIGLOT, "hidden": 64, "pool": "max"}, (2, 1, 28, 28), 64),  # ProtoNet Omniglot
    ({**MINI, "hidden": 32, "pool": "max", "num_classes": 5}, (2, 3, 84, 84), 5),  # MAML Mini-ImageNet
    ({**MINI, "hidden": 64, "pool": "max"}, (2, 3, 84, 84), 1600),  # ProtoNet Mini-ImageNet
])
def test_published_variants_have_the_published_sizes(kwargs, shape, features):
    model = Conv4(**kwargs)
    assert model(torch.randn(*shape)).shape == (shape[0], features)
    if kwargs.get("num_classes") is None:
        assert model.out_features == features
    if kwargs["hidden"] == 32:
        assert model.out_features == 32 * 5 * 5  # Finn's 800-d Mini-ImageNet features


def test_bad_settings_are_rejected():
    with pytest.raises(ValueError, match="pool must be"):
        Conv4(pool="avg")
    with pytest.raises(ValueError, match="too small"):
        Conv4(image_size=8, pool="max")
    with pytest.raises(ValueError, match="channels_last must be"):
        Conv4(channels_last="yes")


def _layouts(model: Conv4, x: torch.Tensor) -> list[bool]:
    """Whether each block's activation (after the ReLU) was channels-last, for one forward of ``x``."""
    seen = []
    relus = [m for m in model.features if isinstance(m, torch.nn.ReLU)]
    hooks = [m.register_forward_hook(lambda m, i, out: seen.append(
        out.is_contiguous(memory_format=torch.channels_last) and not out.is_contiguous())) for m in relus]
    model(x)
    for h in hooks:
        h.remove()
    return seen


@pytest.mark.parametrize("kwargs, shape", [({**OMNIGLOT, "hidden": 8}, (4, 1, 28, 28)),
                                           ({**MINI, "hidden": 8}, (2, 3, 84, 84))])
def test_on_the_cpu_activations_are_channels_last_unless_asked_not_to(kwargs, shape):
    x = torch.rand(*shape)
    assert _layouts(Conv4(**kwargs), x) == [True] * 4  # "auto" on the CPU
    assert _layouts(Conv4(**kwargs, channels_last=False), x) == [False] * 4


@pytest.mark.parametrize("pool, head", [("stride", 5), ("max", 5), ("max", None)])
def test_channels_last_gives_the_same_maml_meta_gradient(pool, head):
    """The layout changes the order of float sums, nothing else: second-order meta-gradients agree in
    float64."""
    g = torch.Generator().manual_seed(0)

    def images(n: int) -> torch.Tensor:
        return torch.rand(n, 1, 28, 28, generator=g, dtype=torch.float64)

    episodes = [Episode((images(5), torch.arange(5)), (images(10), torch.arange(5).repeat(2)))
                for _ in range(2)]
    grads = []
    for layout in (True, False):
        torch.manual_seed(1)
        model = Conv4(1, 6, 28, pool, head, channels_last=layout).double()
        loss = (lambda f, b: F.cross_entropy(f(b[0]), b[1])) if head else (lambda f, b: f(b[0]).pow(2).mean())
        learner = MetaLearner(model, loss, MetaConfig(algorithm="maml", inner_steps=2, inner_lr=0.4,
                                                      batch_tasks=False))
        learner.accumulate_meta_gradients(episodes)
        grads.append(torch.cat([p.grad.reshape(-1) for p in learner.parameters()]))
    assert grads[0].abs().max() > 1e-3  # a gradient worth comparing
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-10, atol=1e-13)


def test_maml_adaptation_through_conv4_fits_the_support_and_leaves_running_stats_alone():
    torch.manual_seed(0)
    model = Conv4(1, 8, 28, "stride", num_classes=3)
    running = model.features[1].running_mean.clone()
    learner = MetaLearner(model, lambda f, b: F.cross_entropy(f(b[0]), b[1]),
                          MetaConfig(algorithm="maml", inner_steps=5, inner_lr=0.4))
    x, y = torch.rand(6, 1, 28, 28), torch.arange(3).repeat(2)
    ep = Episode(support=(x, y), query=(x, y))
    adapted = learner.adapt(ep.support)
    after = F.cross_entropy(adapted(x), y).item()
    assert after < 0.5 * adapted.support_losses[0]
    learner.meta_step([ep], torch.optim.Adam(learner.parameters(), 1e-3))
    assert torch.equal(model.features[1].running_mean, running)


@pytest.mark.parametrize("pool, head", [("stride", 5), ("max", None), ("max", 4)])
@pytest.mark.parametrize("train", [True, False])
def test_forward_tasks_is_functional_call_task_by_task(pool, head, train):
    torch.manual_seed(0)
    tasks = 3
    model = Conv4(1, 6, 28, pool, head).double().train(train)
    params = {n: p.detach() + 0.1 * torch.randn(tasks, *p.shape, dtype=torch.float64)
              for n, p in model.named_parameters()}
    buffers = {n: b.expand(tasks, *b.shape).clone() for n, b in model.named_buffers()}
    for n, b in buffers.items():
        if "running" in n:
            b.add_(torch.rand_like(b))  # other statistics per task, for eval mode
    expected = {n: b.clone() for n, b in buffers.items()}
    x = torch.rand(tasks, 7, 1, 28, 28, dtype=torch.float64)
    out = model.forward_tasks(params, buffers, x)
    for t in range(tasks):  # functional_call updates the views expected[n][t] in place, as forward does
        one = functional_call(model, ({n: p[t] for n, p in params.items()},
                                      {n: b[t] for n, b in expected.items()}), (x[t],))
        torch.testing.assert_close(out[t], one, rtol=1e-12, atol=1e-14)
    for n, b in buffers.items():
        torch.testing.assert_close(b, expected[n], rtol=0, atol=1e-14)


@pytest.mark.parametrize("algorithm", ["maml", "fomaml", "reptile"])
def test_grouped_convolutions_vmap_and_one_by_one_give_one_meta_gradient(algorithm):
    g = torch.Generator().manual_seed(0)

    def images(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.rand(n, 1, 28, 28, generator=g, dtype=torch.float64), torch.arange(5).repeat(n // 5)

    episodes = [Episode(images(5), images(10)) for _ in range(3)]
    grads = {}
    for path in ("one_by_one", "vmap", "grouped"):
        torch.manual_seed(1)
        model = Conv4(1, 6, 28, "stride", 5).double()
        if path == "vmap":
            model.forward_tasks = None  # hidden: vmap's own rules batch the model
        learner = MetaLearner(model, lambda f, b: F.cross_entropy(f(b[0]), b[1]),
                              MetaConfig(algorithm=algorithm, inner_steps=2, inner_lr=0.4,
                                         batch_tasks=path != "one_by_one"))
        learner.accumulate_meta_gradients(episodes)
        grads[path] = torch.cat([p.grad.reshape(-1) for p in learner.parameters()])
    torch.testing.assert_close(grads["vmap"], grads["one_by_one"], rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(grads["grouped"], grads["one_by_one"], rtol=1e-12, atol=1e-14)


def test_init_like_finn_is_finns_network_and_its_inner_loop_leaves_batchnorm_alone():
    torch.manual_seed(0)
    model = Conv4(1, 64, 28, "stride", 20)
    init_like_finn(model)
    bns = [m for m in model.features if isinstance(m, torch.nn.BatchNorm2d)]
    assert all(torch.equal(bn.weight, torch.ones(64)) and not bn.weight.requires_grad for bn in bns)
    convs = [m for m in model.features if isinstance(m, torch.nn.Conv2d)]
    for conv in convs:  # Xavier-uniform: bound sqrt(6 / (fan_in + fan_out)), and it fills the bound
        fan_in, fan_out = conv.weight[0].numel(), conv.weight.shape[0] * conv.weight[0, 0].numel()
        bound = (6 / (fan_in + fan_out)) ** 0.5
        assert 0.95 * bound < conv.weight.abs().max() <= bound and not conv.bias.any()
    assert 0.9 < model.head.weight.std() < 1.1 and not model.head.bias.any()  # N(0, 1): 1280 draws
    assert finn_adapted(model) == ("features.0.weight", "features.0.bias", "features.3.weight",
                                   "features.3.bias", "features.6.weight", "features.6.bias",
                                   "features.9.weight", "features.9.bias", "head.weight", "head.bias")

    learner = MetaLearner(model, lambda f, b: F.cross_entropy(f(b[0]), b[1]),
                          MetaConfig(algorithm="maml", inner_lr=2.0, fast_params=finn_adapted(model)))
    g = torch.Generator().manual_seed(1)
    support = (torch.randn(20, 1, 28, 28, generator=g), torch.arange(20))
    adapted, fast = learner.adapt(support, steps=2).params, finn_adapted(model)
    params = dict(model.named_parameters())
    assert all(torch.equal(adapted[n], p) for n, p in params.items() if n not in fast)  # BatchNorm's
    assert all(not torch.equal(adapted[n], params[n]) for n in fast if n.endswith("weight"))
    learner.meta_step([Episode(support, support, "t")], torch.optim.Adam(learner.parameters(), lr=1e-3))
    assert all(torch.equal(bn.weight, torch.ones(64)) and bn.bias.abs().min() > 0 for bn in bns)


def test_init_like_finn_gives_mini_imagenet_a_xavier_head():
    torch.manual_seed(0)
    model = Conv4(3, 32, 84, "max", 5)
    init_like_finn(model, head_std=None)
    bound = (6 / (800 + 5)) ** 0.5
    assert 0.95 * bound < model.head.weight.abs().max() <= bound
