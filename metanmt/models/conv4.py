"""The Conv-4 backbone of the few-shot literature (Vinyals et al. 2016; Finn et al. 2017; Snell et al. 2017).

Four blocks of 3x3 convolution, BatchNorm and ReLU, each halving the resolution, either with a 2x2 max-pool
(``pool="max"``: ProtoNets everywhere, MAML on Mini-ImageNet; the features are flattened) or with a stride-2
convolution (``pool="stride"``: MAML on Omniglot; the features are averaged over space, as in Finn's code).
With ``num_classes`` a linear head gives logits, without it the model returns the embedding.

On the CPU the activations are kept channels-last (``channels_last="auto"``): PyTorch's CPU max-pooling and
oneDNN's convolutions are vectorised over the channels there, which made a max-pooling Conv-4's meta-step
1.2-1.4x faster with torch 2.13 (not the strided one's; ``benchmarks/meta_step_batched.md``); the numbers are
the same up to float rounding. On GPUs the layout is left as it comes (not measured there).

BatchNorm is the standard layer with running statistics; who uses which statistics is the algorithm's
choice: the meta-learning core runs it on per-episode batch statistics and never updates the model's
running statistics (``MetaConfig.bn_eval``), ProtoNets train it in train mode and test it in eval mode,
as Snell et al. did.

:meth:`Conv4.forward_tasks` runs T copies with different weights at once (MAML's per-task fast weights,
for the core's ``batch_tasks``) as grouped convolutions. :func:`init_like_finn` makes it the network of
Finn et al.'s TensorFlow code (initialisation, BatchNorm without a scale, what the inner loop adapts).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch._C._functorch import is_functorch_wrapped_tensor

POOLS = ("max", "stride")
LAYOUTS = ("auto", True, False)  # channels_last: on the CPU only, always, never


class Conv4(nn.Module):
    """Conv-4: ``[B, C, S, S]`` images to ``[B, features]`` embeddings, or to ``[B, num_classes]`` logits."""

    def __init__(self, in_channels: int = 1, hidden: int = 64, image_size: int = 28, pool: str = "max",
                 num_classes: int | None = None, channels_last: str | bool = "auto") -> None:
        super().__init__()
        if pool not in POOLS:
            raise ValueError(f"pool must be one of {POOLS}, got {pool!r}")
        if channels_last not in LAYOUTS:
            raise ValueError(f"channels_last must be one of {LAYOUTS}, got {channels_last!r}")
        self.channels_last = channels_last
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
        h = x
        last = self.channels_last is True or (self.channels_last == "auto" and x.device.type == "cpu")
        last = last and not is_functorch_wrapped_tensor(x)  # vmap cannot query a batched tensor's layout
        for layer in self.features:
            h = layer(h)
            if last and isinstance(layer, nn.Conv2d):
                # after the convolution: a one-channel input is channels-last already (its strides are
                # ambiguous) and a convolution of it comes out in the weight's layout, contiguous; after that,
                # each layer keeps its input's layout and this is a no-op
                h = h.contiguous(memory_format=torch.channels_last)
        return h.flatten(1) if self.pool == "max" else h.mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x)
        return self.head(h) if self.head is not None else h

    def forward_tasks(self, params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor],
                      x: torch.Tensor) -> torch.Tensor:
        """``forward`` for T tasks at once: every tensor has a leading task dimension (``x``:
        ``[T, B, C, S, S]``, out: ``[T, B, ...]``), as ``functional_call`` per task computes it, running
        statistics included.

        The tasks ride side by side along the channels (``[B, T*C, S, S]``): convolutions are grouped by
        task and BatchNorm over T*C channels normalises each task over its own batch. On CPU this beat
        ``torch.func.vmap``'s generic rules, which move the task dimension around between layers.
        """
        tasks, batch = x.shape[:2]
        h = x.transpose(0, 1).reshape(batch, -1, *x.shape[3:])
        for name, layer in self.features.named_children():
            h = _task_layer(layer, f"features.{name}", params, buffers, h, tasks)
        h = h.mean(dim=(2, 3)) if self.pool == "stride" else h.flatten(1)
        h = h.view(batch, tasks, -1).transpose(0, 1)  # [T, B, features]
        if self.head is None:
            return h
        return torch.baddbmm(params["head.bias"].unsqueeze(1), h, params["head.weight"].transpose(1, 2))


Tensors = dict[str, torch.Tensor]


def _task_layer(layer: nn.Module, name: str, params: Tensors, buffers: Tensors, h: torch.Tensor,
                tasks: int) -> torch.Tensor:
    """One layer of the feature stack on task-major channels ``[B, T*C, S, S]``."""
    if isinstance(layer, nn.Conv2d):
        weight, bias = params[f"{name}.weight"], params.get(f"{name}.bias")
        return F.conv2d(h, weight.reshape(-1, *weight.shape[2:]), None if bias is None else bias.reshape(-1),
                        layer.stride, layer.padding, layer.dilation, layer.groups * tasks)
    if isinstance(layer, nn.BatchNorm2d):
        return _task_batch_norm(layer, name, params, buffers, h)
    return layer(h)  # ReLU, max-pooling: channel by channel, so task by task


def _task_batch_norm(layer: nn.BatchNorm2d, name: str, params: Tensors, buffers: Tensors,
                     h: torch.Tensor) -> torch.Tensor:
    """``nn.BatchNorm2d.forward`` over T*C channels, updating the per-task running statistics in place."""
    mean, var = buffers.get(f"{name}.running_mean"), buffers.get(f"{name}.running_var")
    momentum = layer.momentum
    if layer.training and layer.track_running_stats:
        count = buffers[f"{name}.num_batches_tracked"]
        count.add_(1)
        if momentum is None:  # cumulative average; the tasks have seen equally many batches
            momentum = 1.0 / float(count.reshape(-1)[0])
    weight, bias = params.get(f"{name}.weight"), params.get(f"{name}.bias")
    flat = [None if t is None else t.reshape(-1) for t in (mean, var, weight, bias)]  # views: stats update
    return F.batch_norm(h, *flat, layer.training or mean is None, momentum or 0.0, layer.eps)


def init_like_finn(model: Conv4, head_std: float | None = 1.0) -> None:
    """Make ``model`` the network of Finn et al.'s code (github.com/cbfinn/maml, ``maml.py``, ``utils.py``).

    Convolutions: Xavier-uniform weights, zero biases. BatchNorm: tf.contrib's ``batch_norm`` defaults, an
    offset but no scale (the scale is frozen at 1 here). Head: weights ~ N(0, ``head_std``) on Omniglot,
    Xavier-uniform where ``head_std`` is None (Mini-ImageNet), zero biases. What that code's inner loop adapts
    is :func:`finn_adapted`.
    """
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d) and module.weight is not None:
            nn.init.ones_(module.weight)
            module.weight.requires_grad_(False)
        elif isinstance(module, (nn.Conv2d, nn.Linear)):
            if module is model.head and head_std is not None:
                nn.init.normal_(module.weight, std=head_std)
            else:
                nn.init.xavier_uniform_(module.weight)
            nn.init.zeros_(module.bias)


def finn_adapted(model: nn.Module) -> tuple[str, ...]:
    """The parameters Finn et al.'s inner loop adapts: the convolutions' and the head's. The BatchNorm
    offsets are TensorFlow variables outside that code's ``weights`` dict: learned by the outer loop only."""
    return tuple(name for name, _ in model.named_parameters()
                 if isinstance(model.get_submodule(name.rpartition(".")[0]), (nn.Conv2d, nn.Linear)))
