"""The Conv-4 backbone of the few-shot literature (Vinyals et al. 2016; Finn et al. 2017; Snell et al. 2017).

Four blocks of 3x3 convolution, BatchNorm and ReLU, each halving the resolution, either with a 2x2 max-pool
(``pool="max"``: ProtoNets everywhere, MAML on Mini-ImageNet; the features are flattened) or with a stride-2
convolution (``pool="stride"``: MAML on Omniglot; the features are averaged over space, as in Finn's code).
With ``num_classes`` a linear head gives logits, without it the model returns the embedding.

BatchNorm is the standard layer with running statistics; who uses which statistics is the algorithm's
choice: the meta-learning core runs it on per-episode batch statistics and never updates the model's
running statistics (``MetaConfig.bn_eval``), ProtoNets train it in train mode and test it in eval mode,
as Snell et al. did.
"""

from __future__ import annotations

import torch
from torch import nn

POOLS = ("max", "stride")


class Conv4(nn.Module):
    """Conv-4: ``[B, C, S, S]`` images to ``[B, features]`` embeddings, or to ``[B, num_classes]`` logits."""

    def __init__(self, in_channels: int = 1, hidden: int = 64, image_size: int = 28, pool: str = "max",
                 num_classes: int | None = None) -> None:
        super().__init__()
        if pool not in POOLS:
            raise ValueError(f"pool must be one of {POOLS}, got {pool!r}")
        layers: list[nn.Module] = []
        size, channels = image_size, in_channels
        for _ in range(4):
            stride = 2 if pool == "stride" else 1
            layers += [nn.Conv2d(channels, hidden, 3, stride=stride, padding=1),
                       nn.BatchNorm2d(hidden), nn.ReLU()]
            if pool == "max":
                layers.append(nn.MaxPool2d(2))
                size //= 2
            else:
                size = (size + 1) // 2
            channels = hidden
        if size < 1:
            raise ValueError(f"image_size {image_size} is too small for four halvings")
        self.pool = pool
        self.features = nn.Sequential(*layers)
        self.out_features = hidden * size * size if pool == "max" else hidden
        self.head = nn.Linear(self.out_features, num_classes) if num_classes is not None else None

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(x)
        return h.flatten(1) if self.pool == "max" else h.mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x)
        return self.head(h) if self.head is not None else h
