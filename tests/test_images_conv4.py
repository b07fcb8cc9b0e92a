"""Conv-4 backbones: output sizes of the published variants, and meta-learning through them with the core."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from metanmt.meta import Episode, MetaConfig, MetaLearner
from metanmt.models.conv4 import Conv4

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
