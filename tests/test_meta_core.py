"""Numerical checks of the episodic core: MAML against finite differences, FOMAML, Reptile, BatchNorm,
errors; each meta-gradient check on both paths, tasks one by one and tasks batched (``batch_tasks``)."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import metanmt.meta.learner as learner_module
from metanmt.errors import MetaNMTError
from metanmt.meta import Episode, MetaConfig, MetaLearner

BOTH_PATHS = pytest.mark.parametrize("batch_tasks", [False, True], ids=["one_by_one", "batched"])


def mlp(seed: int = 0, dtype=torch.float64, bn: bool = False) -> nn.Module:
    torch.manual_seed(seed)
    layers = [nn.Linear(3, 8)] + ([nn.BatchNorm1d(8)] if bn else []) + [nn.Tanh(), nn.Linear(8, 2)]
    return nn.Sequential(*layers).to(dtype)


def regression_loss(forward, batch):
    x, y = batch
    return F.mse_loss(forward(x), y)


def episodes(n: int = 2, seed: int = 1, dtype=torch.float64, sizes: tuple[int, int] = (5, 7)
             ) -> list[Episode]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        w = torch.randn(3, 2, generator=g, dtype=dtype)
        xs, xq = (torch.randn(size, 3, generator=g, dtype=dtype) for size in sizes)
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


def central_differences(module: nn.Module, objective: Callable[[], float], h: float = 1e-6) -> torch.Tensor:
    """The gradient of ``objective()`` in every parameter of ``module``, entry by entry (float64)."""
    numeric = []
    with torch.no_grad():
        for p in module.parameters():
            flat = p.view(-1)
            for i in range(flat.numel()):
                orig = flat[i].item()
                flat[i] = orig + h
                up = objective()
                flat[i] = orig - h
                numeric.append((up - objective()) / (2 * h))
                flat[i] = orig
    return torch.tensor(numeric, dtype=torch.float64)


@BOTH_PATHS
@pytest.mark.parametrize("steps", [1, 3])
def test_maml_meta_gradient_matches_finite_differences(steps, batch_tasks):
    model = mlp()
    config = MetaConfig(algorithm="maml", inner_steps=steps, inner_lr=0.3, batch_tasks=batch_tasks)
    learner = MetaLearner(model, regression_loss, config)
    eps = episodes()
    learner.accumulate_meta_gradients(eps)
    analytic = flat_grad(model)
    numeric = central_differences(model, lambda: meta_objective(learner, eps, steps))
    rel = (analytic - numeric).norm() / numeric.norm()
    assert rel < 1e-4, f"relative error {rel:.2e}"
    # and it is not the first-order gradient
    fo = MetaLearner(model, regression_loss, MetaConfig(algorithm="fomaml", inner_steps=steps, inner_lr=0.3))
    model.zero_grad()
    fo.accumulate_meta_gradients(eps)
    assert (flat_grad(model) - analytic).norm() / analytic.norm() > 1e-3


@BOTH_PATHS
def test_fomaml_gradient_is_query_gradient_at_adapted_parameters(batch_tasks):
    model = mlp()
    learner = MetaLearner(model, regression_loss, MetaConfig(algorithm="fomaml", inner_steps=2, inner_lr=0.2,
                                                             batch_tasks=batch_tasks))
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


@BOTH_PATHS
def test_reptile_update_is_scaled_parameter_difference(batch_tasks):
    model = mlp()
    learner = MetaLearner(model, regression_loss, MetaConfig(algorithm="reptile", inner_steps=4, inner_lr=0.1,
                                                             batch_tasks=batch_tasks))
    eps = episodes(2)
    init = {n: p.detach().clone() for n, p in model.named_parameters()}
    adapted = [learner.adapt(ep.support, steps=4).params for ep in eps]
    step_size = 0.5
    learner.meta_step(eps, torch.optim.SGD(learner.parameters(), lr=step_size))
    for n, p in model.named_parameters():
        mean_phi = sum(a[n] for a in adapted) / len(adapted)
        torch.testing.assert_close(p.detach(), init[n] + step_size * (mean_phi - init[n]))


@BOTH_PATHS
@pytest.mark.parametrize("algorithm", ["maml", "fomaml"])
def test_zero_inner_steps_is_ordinary_training(algorithm, batch_tasks):
    model = mlp()
    learner = MetaLearner(model, regression_loss, MetaConfig(algorithm=algorithm, inner_steps=0,
                                                             batch_tasks=batch_tasks))
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


@BOTH_PATHS
@pytest.mark.parametrize("algorithm", ["maml", "fomaml"])
def test_learned_inner_learning_rates_receive_gradients(algorithm, batch_tasks):
    model = mlp()
    learner = MetaLearner(model, regression_loss, MetaConfig(algorithm=algorithm, inner_steps=2, inner_lr=0.1,
                                                             learn_inner_lr=True, batch_tasks=batch_tasks))
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


def test_inner_adam_foreach_path_matches_the_differentiable_one():
    """FOMAML/Reptile's inner Adam (detached gradients, one step size) runs on torch._foreach_* kernels;
    its steps equal the per-tensor formula's, and tensors that need a graph still take that formula."""
    from metanmt.meta.inner_optim import get_inner_update

    update = get_inner_update("adam")
    gen = torch.Generator().manual_seed(0)
    params = [torch.randn(4, 3, generator=gen, dtype=torch.float64, requires_grad=True) for _ in range(3)]
    grads = [[torch.randn(4, 3, generator=gen, dtype=torch.float64) for _ in params] for _ in range(3)]
    fast_state, slow_state, fast, slow = {}, {}, params, params
    for step, g in enumerate(grads):
        fast = update(fast, g, [0.1] * 3, fast_state, step)
        tracked = [x.clone().requires_grad_() for x in g]  # gradients with a graph: the per-tensor path
        slow = update(slow, tracked, [0.1] * 3, slow_state, step)
        assert all(m.requires_grad for m in slow_state["m"]) and not fast_state["m"][0].requires_grad
        for a, b in zip(fast, slow):
            torch.testing.assert_close(a, b, rtol=1e-13, atol=1e-15)
    fast[0].sum().backward()  # the identity path to the parameters is kept
    assert torch.equal(params[0].grad, torch.ones_like(params[0]))


def test_multi_step_loss_changes_the_meta_gradient():
    eps = episodes(2)
    grads = []
    for multi in (False, True):
        model = mlp()
        MetaLearner(model, regression_loss, MetaConfig(algorithm="maml", inner_steps=3, inner_lr=0.2,
                                                       multi_step_loss=multi)).accumulate_meta_gradients(eps)
        grads.append(flat_grad(model))
    assert torch.isfinite(grads[1]).all() and not torch.allclose(grads[0], grads[1])


@BOTH_PATHS
@pytest.mark.parametrize("algorithm", ["maml", "fomaml", "reptile"])
def test_batchnorm_running_statistics_are_never_polluted(algorithm, batch_tasks):
    model = mlp(bn=True)
    bn = model[1]
    learner = MetaLearner(model, regression_loss, MetaConfig(algorithm=algorithm, inner_steps=2, inner_lr=0.1,
                                                             batch_tasks=batch_tasks))
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


# ---------------------------------------------------------------------- tasks batched (``batch_tasks``)
def meta_gradient(config: MetaConfig, eps: list[Episode], bn: bool = False
                  ) -> tuple[torch.Tensor, MetaLearner]:
    model = mlp(bn=bn)
    learner = MetaLearner(model, regression_loss, config)
    result = learner.accumulate_meta_gradients(eps)
    grads = torch.cat([p.grad.reshape(-1) for p in learner.parameters()])
    return torch.cat([grads, torch.tensor([result.loss, result.support_loss], dtype=grads.dtype)]), learner


@pytest.mark.parametrize("settings", [
    {"algorithm": "maml"}, {"algorithm": "fomaml"}, {"algorithm": "reptile"},
    {"algorithm": "maml", "learn_inner_lr": True}, {"algorithm": "fomaml", "learn_inner_lr": True},
    {"algorithm": "maml", "multi_step_loss": True}, {"algorithm": "maml", "inner_optimizer": "adam"},
    {"algorithm": "maml", "fast_params": ("0.*",)},
], ids=lambda s: "-".join(str(v) for v in s.values()))
@pytest.mark.parametrize("bn", [False, True], ids=["mlp", "batchnorm"])
def test_batched_and_one_by_one_meta_gradients_agree_to_float64_precision(settings, bn):
    eps = episodes(4)
    config = {"inner_steps": 3, "inner_lr": 0.2, **settings}
    one_by_one, _ = meta_gradient(MetaConfig(**config, batch_tasks=False), eps, bn)
    batched, learner = meta_gradient(MetaConfig(**config, batch_tasks=True), eps, bn)
    assert learner._batchable  # the batched path did run
    torch.testing.assert_close(batched, one_by_one, rtol=1e-12, atol=1e-14)


def test_episodes_of_other_shapes_are_batched_apart():
    eps = episodes(2) + episodes(2, seed=2, sizes=(4, 9)) + episodes(1, seed=3, sizes=(6, 6))
    one_by_one, _ = meta_gradient(MetaConfig(algorithm="maml", inner_steps=2, batch_tasks=False), eps)
    batched, _ = meta_gradient(MetaConfig(algorithm="maml", inner_steps=2, batch_tasks=True), eps)
    torch.testing.assert_close(batched, one_by_one, rtol=1e-12, atol=1e-14)


def dropout_mlp() -> nn.Module:  # random operations: vmapped tasks would not draw what they draw one by one
    return nn.Sequential(nn.Linear(3, 8), nn.Dropout(0.5), nn.Linear(8, 2)).double()


def test_batching_a_model_vmap_cannot_run_is_a_clear_error():
    learner = MetaLearner(dropout_mlp(), regression_loss, MetaConfig(batch_tasks=True))
    with pytest.raises(MetaNMTError, match="batch_tasks=True, but this model cannot run its tasks together "
                                           "under torch.func.vmap .*random operation"):
        learner.accumulate_meta_gradients(episodes(2))


def test_auto_batches_only_where_it_pays_and_falls_back_with_a_warning(monkeypatch):
    learner = MetaLearner(mlp(), regression_loss, MetaConfig())
    learner.accumulate_meta_gradients(episodes(2))
    assert learner._batchable is None  # on CPU the tasks run one by one: vmap was not even tried
    monkeypatch.setattr(learner_module, "batching_pays", lambda device: True)  # as on an accelerator
    learner.accumulate_meta_gradients(episodes(2))
    assert learner._batchable
    fallback = MetaLearner(dropout_mlp(), regression_loss, MetaConfig())
    with pytest.warns(UserWarning, match="one by one: the model fails under torch.func.vmap"):
        fallback.accumulate_meta_gradients(episodes(2))
    assert fallback._batchable is False
    assert all(p.grad is not None for p in fallback.parameters())  # from the one-by-one rerun
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warned once, then one by one without trying again
        fallback.accumulate_meta_gradients(episodes(2))


def test_bad_batch_tasks_is_an_error():
    with pytest.raises(MetaNMTError, match="batch_tasks must be 'auto', True or False"):
        MetaConfig(batch_tasks="yes")


# ---------------------------------------------------------------------- MAML with recomputed inner steps
@pytest.mark.parametrize("settings", [
    {}, {"inner_optimizer": "adam"}, {"inner_optimizer": "adam", "learn_inner_lr": True},
    {"fast_params": ("0.*",)}, {"inner_steps": 0}, {"batch_tasks": True, "inner_optimizer": "adam"},
], ids=lambda s: "-".join(str(v) for v in s.values()) or "sgd")
@pytest.mark.parametrize("bn", [False, True], ids=["mlp", "batchnorm"])
def test_recomputed_maml_gives_the_same_meta_gradient(settings, bn):
    eps = episodes(3)
    config = {"algorithm": "maml", "inner_steps": 3, "inner_lr": 0.2, "batch_tasks": False, **settings}
    kept, _ = meta_gradient(MetaConfig(**config), eps, bn)
    recomputed, _ = meta_gradient(MetaConfig(**config, recompute=True), eps, bn)
    torch.testing.assert_close(recomputed, kept, rtol=1e-10, atol=1e-13)


def test_recomputed_maml_redraws_the_same_dropout_masks():
    eps = episodes(2)
    grads, next_draws = [], []
    for recompute in (False, True):
        torch.manual_seed(0)
        model = dropout_mlp()
        config = MetaConfig(algorithm="maml", inner_steps=2, inner_lr=0.2, batch_tasks=False,
                            recompute=recompute)
        MetaLearner(model, regression_loss, config).accumulate_meta_gradients(eps)
        grads.append(flat_grad(model))
        next_draws.append(torch.rand(3))  # the random stream goes on as if nothing had been recomputed
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-10, atol=1e-13)
    torch.testing.assert_close(next_draws[1], next_draws[0], rtol=0, atol=0)


@pytest.mark.parametrize("settings", [{"algorithm": "fomaml"},
                                      {"algorithm": "maml", "multi_step_loss": True}])
def test_recompute_outside_second_order_maml_is_an_error(settings):
    with pytest.raises(MetaNMTError, match="recompute saves memory for second-order MAML"):
        MetaConfig(**settings, recompute=True)


# ---------------------------------------------------------------------- micro-batches
@pytest.mark.parametrize("settings", [
    {"algorithm": "maml", "recompute": True},
    {"algorithm": "maml", "recompute": True, "inner_optimizer": "adam"},
    {"algorithm": "maml", "recompute": True, "inner_optimizer": "adam", "learn_inner_lr": True},
    {"algorithm": "maml", "recompute": True, "fast_params": ("0.*",)}, {"algorithm": "fomaml"},
    {"algorithm": "fomaml", "learn_inner_lr": True}, {"algorithm": "reptile", "inner_optimizer": "adam"},
], ids=lambda s: "-".join(str(v) for v in s.values()))
@pytest.mark.parametrize("pieces", [2, 3, 50])
def test_micro_batches_give_the_same_meta_gradient(settings, pieces):
    """Support (5 rows) and query (7 rows) in unequal pieces (50: one row each), weighted by their rows."""
    eps = episodes(3)
    config = {"inner_steps": 3, "inner_lr": 0.2, "batch_tasks": False, **settings}
    whole, _ = meta_gradient(MetaConfig(**config), eps)
    micro, _ = meta_gradient(MetaConfig(**config, micro_batches=pieces), eps)
    torch.testing.assert_close(micro, whole, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("keep", [1, 2, 3])
def test_kept_pieces_give_the_same_meta_gradient(keep, optimizer):
    """MAML's recompute sweep with the last ``keep`` of 3 support pieces kept from the inner loop (3: none
    recomputed) gives the whole batches' meta-gradient, learned step sizes included."""
    eps = episodes(3)
    config = {"algorithm": "maml", "inner_steps": 3, "inner_lr": 0.2, "batch_tasks": False,
              "inner_optimizer": optimizer, "learn_inner_lr": True}
    whole, _ = meta_gradient(MetaConfig(**config), eps)
    kept, _ = meta_gradient(MetaConfig(**config, recompute=True, micro_batches=3, keep_pieces=keep), eps)
    torch.testing.assert_close(kept, whole, rtol=1e-10, atol=1e-13)


def test_kept_pieces_are_not_recomputed():
    """Each kept piece saves its forward pass in the sweep: one episode, 2 inner steps, 3 support and 3 query
    pieces: 6 + 3 + 6 forward passes when every piece is recomputed, 2 fewer per kept piece and step."""
    calls = []
    for keep in (0, 1, 3):
        model = mlp()
        handle = model.register_forward_hook(lambda *args, keep=keep: calls.append(keep))
        config = MetaConfig(algorithm="maml", inner_steps=2, batch_tasks=False, recompute=True,
                            micro_batches=3, keep_pieces=keep)
        MetaLearner(model, regression_loss, config).accumulate_meta_gradients(episodes(1))
        handle.remove()
    assert [calls.count(k) for k in (0, 1, 3)] == [15, 13, 9]


@pytest.mark.parametrize("keep", [0, 1])
def test_micro_batched_maml_with_dropout_matches_finite_differences(keep):
    """Second-order MAML through pieces of a dropout model: each piece's masks are redrawn in the recomputed
    backward sweep (or kept with its graph), so the meta-gradient is that of the very objective computed (the
    same seed, the same masks): central differences of its query loss, float64."""
    torch.manual_seed(0)
    model = dropout_mlp()
    config = MetaConfig(algorithm="maml", inner_steps=2, inner_lr=0.2, batch_tasks=False, recompute=True,
                        micro_batches=3, keep_pieces=keep)
    learner, eps = MetaLearner(model, regression_loss, config), episodes(2)

    def objective() -> float:
        torch.manual_seed(1)
        with torch.enable_grad():
            return learner.accumulate_meta_gradients(eps).loss

    objective()
    analytic = flat_grad(model)
    torch.testing.assert_close(analytic, central_differences(model, objective), rtol=1e-6, atol=1e-8)


def test_micro_batches_where_they_cannot_apply_are_errors():
    for settings in ({"algorithm": "maml"}, {"algorithm": "fomaml", "multi_step_loss": True},
                     {"algorithm": "fomaml", "batch_tasks": True}, {"micro_batches": 0}):
        with pytest.raises(MetaNMTError, match="micro_batches"):
            MetaConfig(**{"micro_batches": 2, **settings})
    for settings in ({"micro_batches": 2, "keep_pieces": 3}, {"keep_pieces": 1}, {"keep_pieces": -1}):
        with pytest.raises(MetaNMTError, match="keep_pieces"):
            MetaConfig(**{"algorithm": "maml", "recompute": True, **settings})
    with pytest.raises(MetaNMTError, match="keep_pieces applies to MAML's recompute sweep"):
        MetaConfig(algorithm="fomaml", micro_batches=2, keep_pieces=1)
    with pytest.raises(MetaNMTError, match="micro_batches would normalise each piece .*BatchNorm"):
        MetaLearner(mlp(bn=True), regression_loss, MetaConfig(algorithm="fomaml", micro_batches=2))
    learner = MetaLearner(mlp(), regression_loss, MetaConfig(algorithm="fomaml", micro_batches=2),
                          batch_weight=lambda batch: 0)
    with pytest.raises(MetaNMTError, match="the batch has no weight to average over"):
        learner.accumulate_meta_gradients(episodes(1))
