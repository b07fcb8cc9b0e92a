"""Prototypical-network loss and accuracy: exact values on small cases, learning on a toy problem."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from metanmt.meta.protonet import protonet_loss, prototype_logits, prototypes


def test_prototypes_are_class_means_and_logits_negative_squared_distances():
    emb = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 4.0], [10.0, 10.0]])
    labels = torch.tensor([0, 0, 1, 2])
    protos = prototypes(emb, labels, 3)
    torch.testing.assert_close(protos, torch.tensor([[1.0, 0.0], [0.0, 4.0], [10.0, 10.0]]))
    query = torch.tensor([[1.0, 1.0]])
    logits = prototype_logits(emb, labels, query)
    torch.testing.assert_close(logits, torch.tensor([[-1.0, -10.0, -162.0]]))


def test_loss_and_accuracy_on_separated_clusters():
    g = torch.Generator().manual_seed(0)
    centers = torch.tensor([[0.0, 0.0], [6.0, 0.0], [0.0, 6.0]])
    sx = centers.repeat_interleave(4, 0) + 0.3 * torch.randn(12, 2, generator=g)
    qx = centers.repeat_interleave(5, 0) + 0.3 * torch.randn(15, 2, generator=g)
    sy, qy = torch.arange(3).repeat_interleave(4), torch.arange(3).repeat_interleave(5)
    loss, acc = protonet_loss(lambda x: x, (sx, sy), (qx, qy))
    assert float(acc) == 1.0
    protos = torch.stack([sx[sy == c].mean(0) for c in range(3)])
    expected = F.cross_entropy(-((qx[:, None] - protos[None]) ** 2).sum(-1), qy)
    torch.testing.assert_close(loss, expected)
    assert float(loss) < 0.01
    # swapping the query labels makes every prediction wrong
    _, wrong = protonet_loss(lambda x: x, (sx, sy), (qx, (qy + 1) % 3))
    assert float(wrong) == 0.0


def test_support_and_query_share_one_forward_pass_for_tensors_and_not_for_other_inputs():
    calls = []

    def embed(x):
        calls.append(x["v"].shape[0] if isinstance(x, dict) else x.shape[0])
        return x["v"] if isinstance(x, dict) else x

    sx, qx = torch.randn(4, 3), torch.randn(6, 3)
    sy, qy = torch.tensor([0, 0, 1, 1]), torch.tensor([0, 1, 0, 1, 0, 1])
    loss_t, _ = protonet_loss(embed, (sx, sy), (qx, qy))
    assert calls == [10]
    calls.clear()
    loss_d, _ = protonet_loss(embed, ({"v": sx}, sy), ({"v": qx}, qy))
    assert calls == [4, 6]
    torch.testing.assert_close(loss_t, loss_d)


def test_training_a_linear_embedding_on_the_loss_learns_the_informative_direction():
    """Class identity lives in one small feature, five large noise features hide it from raw distances."""
    g = torch.Generator().manual_seed(1)

    def episode(ways=5, shots=1, queries=5):
        means = torch.randn(ways, generator=g) * 3
        def draw(n):
            x = torch.randn(ways * n, 6, generator=g) * 3
            x[:, 0] = means.repeat_interleave(n) * 0.3 + 0.02 * torch.randn(ways * n, generator=g)
            return x
        return (draw(shots), torch.arange(ways).repeat_interleave(shots)), \
               (draw(queries), torch.arange(ways).repeat_interleave(queries))

    embed = nn.Linear(6, 6, bias=False)
    with torch.no_grad():
        embed.weight.copy_(torch.eye(6))
    test = [episode() for _ in range(50)]

    def accuracy():
        with torch.no_grad():
            return sum(float(protonet_loss(embed, s, q)[1]) for s, q in test) / len(test)

    before = accuracy()
    opt = torch.optim.Adam(embed.parameters(), lr=0.05)
    for _ in range(300):
        s, q = episode()
        loss, _ = protonet_loss(embed, s, q)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = accuracy()
    assert before < 0.6 and after > 0.9, (before, after)


def test_a_class_without_support_is_an_error():
    with pytest.raises(ValueError, match=r"classes \[1\] have none"):
        prototypes(torch.randn(3, 2), torch.tensor([0, 0, 2]), 3)
    with pytest.raises(ValueError, match="lie in 0..1"):
        prototypes(torch.randn(3, 2), torch.tensor([0, 1, 2]), 2)
