"""Numerical checks of the episodic core: MAML against finite differences, FOMAML, Reptile, BatchNorm,
errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from metanmt.errors import MetaNMTError
from metanmt.meta import Episode, MetaConfig, MetaLearner


def mlp(seed: int = 0, dtype=torch.float64, bn: bool = False) -> nn.Module:
    torch.manual_seed(seed)
    layers = [nn.Linear(3, 8)] + ([nn.BatchNorm1d(8)] if bn else []) + [nn.Tanh(), nn.Linear(8, 2)]
    return nn.Sequential(*layers).to(dtype)


def regression_loss(forward, batch):
    x, y = batch
    return F.mse_loss(forward(x), y)


def episodes(n: int = 2, seed: int = 1, dtype=torch.float64) -> list[Episode]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        w = torch.randn(3, 2, generator=g, dtype=dtype)
        xs, xq = torch.randn(5, 3, generator=g, dtype=dtype), torch.randn(7, 3, generator=g, dtype=dtype)
        out.append(Episode(support=(xs, torch.sin(xs @ w)), query=(xq, torch.sin(xq @ w)), task=f"t{i}"))
    return out


def meta_objective(learner: MetaLearner, eps: list[Episode], steps: int) -> float:
    """Mean post-adaptation query loss, computed through adapt(): the function MAML differentiates."""
    total = 0.0
    for ep in eps:
        adapted = learner.adapt(ep.support, steps=steps)
        total += float(regression_loss(adapted, ep.query))
    return total / len(eps)


def flat_grad(module: nn.Module) -> torch.Tensor:
    return torch.cat([p.grad.reshape(-1) for p in module.parameters()])


@pytest.mark.parametrize("steps", [1, 3])
def test_maml_meta_gradient_matches_finite_differences(steps):
    model = mlp()
    learner = MetaLearner(model, regression_loss,
                          MetaConfig(algorithm="maml", inner_steps=steps, inner_lr=0.3))
    eps = episodes()
    learner.accumulate_meta_gradients(eps)
    analytic = flat_grad(model)
    numeric = torch.zeros_like(analytic)
    h = 1e-6
    k = 0
    with torch.no_grad():
        for p in model.parameters():
            flat = p.view(-1)
            for i in range(flat.numel()):
                orig = flat[i].item()
                flat[i] = orig + h
                up = meta_objective(learner, eps, steps)
                flat[i] = orig - h
                down = meta_objective(learner, eps, steps)
                flat[i] = orig
                numeric[k] = (up - down) / (2 * h)
                k += 1
    rel = (analytic - numeric).norm() / numeric.norm()
    assert rel < 1e-4, f"relative error {rel:.2e}"
    # and it is not the first-order gradient
    fo = MetaLearner(model, regression_loss, MetaConfig(algorithm="fomaml", inner_steps=steps, inner_lr=0.3))
    model.zero_grad()
    fo.accumulate_meta_gradients(eps)
    assert (flat_grad(model) - analytic).norm() / analytic.norm() > 1e-3


def test_fomaml_gradient_is_query_gradient_at_adapted_parameters():
    model = mlp()
    learner = MetaLearner(model, regression_loss, MetaConfig(algorithm="fomaml", inner_steps=2, inner_lr=0.2))
    eps = episodes(3)
    learner.accumulate_meta_gradients(eps)
    got = {n: p.grad.clone() for n, p in model.named_parameters()}
    expected = {n: torch.zeros_like(p) for n, p in model.named_parameters()}
    for ep in eps:
        adapted = learner.adapt(ep.support, steps=2)
        phi = {n: t.clone().requires_grad_() for n, t in adapted.params.items()}
        loss = regression_loss(learner.functional(phi), ep.query)
        for n, g in zip(phi, torch.autograd.grad(loss, list(phi.values()))):
            expected[n] += g / len(eps)
    for n, value in got.items():
        torch.testing.assert_close(value, expected[n], rtol=1e-10, atol=1e-12)


def test_reptile_update_is_scaled_parameter_difference():
    model = mlp()
    learner = MetaLearner(model, regression_loss,
                          MetaConfig(algorithm="reptile", inner_steps=4, inner_lr=0.1))
    eps = episodes(2)
    init = {n: p.detach().clone() for n, p in model.named_parameters()}
    adapted = [learner.adapt(ep.support, steps=4).params for ep in eps]
    step_size = 0.5
    learner.meta_step(eps, torch.optim.SGD(learner.parameters(), lr=step_size))
    for n, p in model.named_parameters():
        mean_phi = sum(a[n] for a in adapted) / len(adapted)
        torch.testing.assert_close(p.detach(), init[n] + step_size * (mean_phi - init[n]))


@pytest.mark.parametrize("algorithm", ["maml", "fomaml"])
def test_zero_inner_steps_is_ordinary_training(algorithm):
    model = mlp()
    learner = MetaLearner(model, regression_loss, MetaConfig(algorithm=algorithm, inner_steps=0))
    eps = episodes(2)
    learner.accumulate_meta_gradients(eps)
    got = flat_grad(model).clone()
    model.zero_grad()
    (sum(regression_loss(model, ep.query) for ep in eps) / len(eps)).backward()
    torch.testing.assert_close(got, flat_grad(model))


def test_frozen_parameters_do_not_move_in_inner_loop():
    model = mlp()
    learner = MetaLearner(model, regression_loss,
                          MetaConfig(inner_steps=3, inner_lr=0.5, fast_params=("0.*",)))
    assert learner.fast_names == ["0.weight", "0.bias"]
    adapted = learner.adapt(episodes(1)[0].support)
    for n, p in model.named_parameters():
        moved = not torch.equal(adapted.params[n], p.detach())
        assert moved == n.startswith("0."), n


@pytest.mark.parametrize("algorithm", ["maml", "fomaml"])
def test_learned_inner_learning_rates_receive_gradients(algorithm):
    model = mlp()
    learner = MetaLearner(model, regression_loss,
                          MetaConfig(algorithm=algorithm, inner_steps=2, inner_lr=0.1, learn_inner_lr=True))
    assert learner.inner_lrs.shape == (2, 4)
    before = learner.inner_lrs.detach().clone()
    learner.meta_step(episodes(2), torch.optim.SGD(learner.parameters(), lr=0.01))
    assert learner.inner_lrs.grad is not None and learner.inner_lrs.grad.abs().min() > 0
    assert not torch.equal(before, learner.inner_lrs.detach())


def test_inner_adam_second_order_is_finite():
    model = mlp()
    learner = MetaLearner(model, regression_loss,
                          MetaConfig(algorithm="maml", inner_steps=2, inner_lr=0.01, inner_optimizer="adam"))
    learner.accumulate_meta_gradients(episodes(2))
    assert torch.isfinite(flat_grad(model)).all()


def test_multi_step_loss_changes_the_meta_gradient():
    eps = episodes(2)
    grads = []
    for multi in (False, True):
        model = mlp()
        MetaLearner(model, regression_loss, MetaConfig(algorithm="maml", inner_steps=3, inner_lr=0.2,
                                                       multi_step_loss=multi)).accumulate_meta_gradients(eps)
        grads.append(flat_grad(model))
    assert torch.isfinite(grads[1]).all() and not torch.allclose(grads[0], grads[1])


@pytest.mark.parametrize("algorithm", ["maml", "fomaml", "reptile"])
def test_batchnorm_running_statistics_are_never_polluted(algorithm):
    model = mlp(bn=True)
    bn = model[1]
    learner = MetaLearner(model, regression_loss,
                          MetaConfig(algorithm=algorithm, inner_steps=2, inner_lr=0.1))
    learner.meta_step(episodes(2), torch.optim.SGD(learner.parameters(), lr=0.01))
    learner.adapt(episodes(1)[0].support)
    assert torch.equal(bn.running_mean, torch.zeros(8, dtype=torch.float64))
    assert torch.equal(bn.running_var, torch.ones(8, dtype=torch.float64))
    assert int(bn.num_batches_tracked) == 0


def test_batchnorm_eval_modes():
    model = mlp(bn=True)
    ep = episodes(1)[0]
    xq = ep.query[0]
    trans = MetaLearner(model, regression_loss, MetaConfig(inner_steps=1, bn_eval="transductive"))
    sup = MetaLearner(model, regression_loss, MetaConfig(inner_steps=1, bn_eval="support"))
    a_t, a_s = trans.adapt(ep.support), sup.adapt(ep.support)
    # transductive: a query's prediction depends on the other queries in the batch
    assert not torch.allclose(a_t(xq)[:1], a_t(xq[:1] .repeat(2, 1))[:1])
    # support statistics: each query is predicted on its own, the same alone or in a batch
    torch.testing.assert_close(a_s(xq)[:1], a_s(xq[:1]))
    # and those statistics are exactly the support set's (of the adapted first layer's output)
    h = F.linear(ep.support[0], a_s.params["0.weight"], a_s.params["0.bias"])
    torch.testing.assert_close(a_s.buffers["1.running_mean"], h.mean(0))
    torch.testing.assert_close(a_s.buffers["1.running_var"], h.var(0, unbiased=True))


def test_adapted_to_module_predicts_like_adapted():
    model = mlp()
    learner = MetaLearner(model, regression_loss, MetaConfig(inner_steps=2, inner_lr=0.3))
    ep = episodes(1)[0]
    adapted = learner.adapt(ep.support)
    module = adapted.to_module()
    torch.testing.assert_close(module(ep.query[0]), adapted(ep.query[0]))
    assert not torch.allclose(model(ep.query[0]), module(ep.query[0]))


def test_empty_support_set_is_an_error():
    learner = MetaLearner(mlp(), regression_loss)
    ep = episodes(1)[0]
    empty = Episode(support=(ep.support[0][:0], ep.support[1][:0]), query=ep.query, task="fi")
    with pytest.raises(MetaNMTError, match="empty support set in episode of task 'fi'"):
        learner.meta_step([empty])


def test_no_episodes_is_an_error():
    with pytest.raises(MetaNMTError, match="no episodes"):
        MetaLearner(mlp(), regression_loss).meta_step([])


def test_pattern_matching_nothing_is_an_error():
    with pytest.raises(MetaNMTError, match="'encoder.*' matches no trainable parameter"):
        MetaLearner(mlp(), regression_loss, MetaConfig(fast_params=("encoder.*",)))


def test_mismatched_parameter_names_are_an_error():
    learner = MetaLearner(mlp(), regression_loss)
    with pytest.raises(MetaNMTError, match="not in the model: 5.weight"):
        learner.functional({"5.weight": torch.zeros(2, 8, dtype=torch.float64)})


def test_unknown_algorithm_is_an_error():
    with pytest.raises(MetaNMTError, match="unknown algorithm 'mamll'"):
        MetaConfig(algorithm="mamll")


def test_same_seed_same_numbers():
    results = []
    for _ in range(2):
        model = mlp(seed=3, dtype=torch.float32)
        learner = MetaLearner(model, regression_loss, MetaConfig(algorithm="maml", inner_steps=2))
        opt = torch.optim.Adam(learner.parameters(), lr=1e-2)
        for step in range(3):
            learner.meta_step(episodes(2, seed=step, dtype=torch.float32), opt)
        results.append(torch.cat([p.detach().reshape(-1) for p in model.parameters()]))
    assert torch.equal(results[0], results[1])


def test_reptile_needs_no_query_set():
    model = mlp()
    learner = MetaLearner(model, regression_loss,
                          MetaConfig(algorithm="reptile", inner_steps=2, inner_lr=0.1))
    ep = episodes(1)[0]
    before = model[0].weight.detach().clone()
    result = learner.meta_step([Episode(support=ep.support, query=None)],
                               torch.optim.SGD(model.parameters(), lr=1.0))
    assert not torch.equal(before, model[0].weight) and result.support_loss > 0


def test_support_statistics_need_running_statistics():
    model = nn.Sequential(nn.Linear(3, 8), nn.BatchNorm1d(8, track_running_stats=False), nn.Linear(8, 2))
    with pytest.raises(MetaNMTError, match="track_running_stats=False"):
        MetaLearner(model, regression_loss, MetaConfig(bn_eval="support"))
