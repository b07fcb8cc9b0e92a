"""The whole experiment of Gu et al. (2018) as one function: prepare -> meta-train -> pretrain ->
fine-tune at several sizes x draws on the test languages -> evaluate -> report.

``metanmt quickstart`` runs it on the embedded demo corpus; the recipes run the same steps as separate
commands. Every step skips work that is already complete, so an interrupted run continues where it stopped.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path

from metanmt.errors import MetaNMTError
from metanmt.eval.evaluate import Decoding


@dataclasses.dataclass(frozen=True)
class ExperimentPlan:
    """What an experiment covers beyond its config: the systems, the fine-tuning cells, what is decoded."""

    systems: Sequence[str] | None = None  # None: all, in training order (multimeta after multinmt)
    langs: Sequence[str] | None = None  # the languages fine-tuned on (None: the test languages)...
    validation: bool = False  # ...plus the validation languages (the report keeps them out of its verdict)
    sizes: Sequence[int] | None = None  # fine-tuning tokens (None: the config's)
    draws: int | None = None  # draws per size (None: the config's)
    checkpoint: str = "best"  # the checkpoint of each training run that is fine-tuned: best or last
    splits: Sequence[str] | None = None  # None: every evaluation split of the language
    max_eval_sentences: int | None = None  # in-domain test sentences decoded (None: all)
    progress: bool = True
    jobs: int = 1  # processes that train, fine-tune and evaluate the systems side by side


def run_experiment(config_path: str | Path, output_dir: str | Path, plan: ExperimentPlan = ExperimentPlan(),
                   data_root: str | Path | None = None, data_dir: str | Path | None = None) -> dict:
    """Run (or continue) the experiment in ``output_dir``; return the report.

    ``plan.systems`` restricts training/fine-tuning to some systems, so two processes can share the work
    (e.g. one per system), as ``plan.jobs`` does within one command; the report covers every evaluation
    found. ``data_dir`` names data prepared earlier (used as it is); without it the config's data section
    is prepared into ``output_dir/data``.
    The out-of-domain test sets are decoded for ``eval.ood_draws`` draws and at most
    ``eval.ood_max_sentences`` sentences (CPU budget).
    """
    from metanmt.data import PreparedData
    from metanmt.data.prepare import prepare
    from metanmt.eval.report import write_report
    from metanmt.side_by_side import run_side_by_side
    from metanmt.train.config import SYSTEMS, TrainConfig

    systems = _ordered_systems(plan.systems)
    groups = _job_groups(systems, plan.jobs)
    out = Path(output_dir)
    config = TrainConfig.load(config_path)
    _step("1/4 prepare data")
    data_dir = Path(data_dir) if data_dir else prepare(config_path, data_root, out / "data")
    cells = _cells(PreparedData.load(data_dir), plan)
    if len(groups) == 1:
        _run_systems(config, systems, out, data_dir, cells, plan)
    else:
        run_side_by_side({"+".join(group): (_run_systems, (config, group, out, data_dir, cells, plan))
                          for group in groups}, out / "logs")
    _step("4/4 report")
    trained = [out / s for s in SYSTEMS if (out / s / "train_log.jsonl").is_file()]
    report = write_report(out / "eval", out / "report", train_runs=trained)
    print(f"report: {out / 'report' / 'report.md'}")
    return report


def _ordered_systems(systems: Sequence[str] | None) -> list[str]:
    """The systems asked for (all if none), in training order: multimeta after the multinmt it starts from."""
    from metanmt.train.config import SYSTEMS

    unknown = sorted(set(systems or ()) - set(SYSTEMS))
    if unknown:
        raise MetaNMTError(f"unknown systems {unknown}; choose from {list(SYSTEMS)}")
    return [s for s in SYSTEMS if s in (systems or SYSTEMS)]


def _job_groups(systems: list[str], jobs: int) -> list[list[str]]:
    """``systems`` shared among at most ``jobs`` processes; multimeta follows the multinmt it starts from."""
    if jobs < 1:
        raise MetaNMTError(f"jobs must be at least 1, not {jobs}")
    units: list[list[str]] = []
    for system in systems:
        if system == "multimeta" and "multinmt" in systems:
            next(unit for unit in units if "multinmt" in unit).append(system)
        else:
            units.append([system])
    groups: list[list[str]] = [[] for _ in range(min(jobs, len(units)))]
    for i, unit in enumerate(units):
        groups[i % len(groups)] += unit
    return groups


def _run_systems(config, systems: list[str], out: Path, data_dir: Path, cells: list[tuple[str, int, int]],
                 plan: ExperimentPlan) -> None:
    """Train ``systems`` one after the other, then fine-tune and evaluate them: one process's share."""
    from metanmt.data import PreparedData

    models = {}  # system -> the checkpoint fine-tuned
    for system in systems:
        _step(f"2/4 train {system}")
        models[system] = _train(config, system, data_dir, out, plan.checkpoint, plan.progress)
    _step("3/4 fine-tune and evaluate")
    _evaluate_systems(models, out, config, PreparedData.load(data_dir), data_dir, cells, plan)


def _cells(data, plan: ExperimentPlan) -> list[tuple[str, int, int]]:
    """The (language, fine-tuning tokens, draw) cells of ``plan``; zero-shot has one draw."""
    langs = [*(plan.langs or data.test_langs), *(data.valid_langs if plan.validation else [])]
    langs = list(dict.fromkeys(langs))  # each once, in order
    sizes = list(plan.sizes if plan.sizes is not None else data.finetune_sizes)
    draws = data.num_draws if plan.draws is None else plan.draws
    unknown = sorted(set(langs) - set(data.test_langs) - set(data.valid_langs))
    if unknown:
        raise MetaNMTError(f"languages {unknown} have no fine-tuning data; prepared: "
                           f"{data.test_langs + data.valid_langs}")
    return [(la, t, d) for la in langs for t in sizes for d in range(1 if t == 0 else draws)]


def _train(config, system: str, data_dir: Path, out: Path, checkpoint: str, progress: bool) -> Path:
    """Train (or resume) ``system``; the checkpoint that is fine-tuned (``best`` or ``last``)."""
    from metanmt.train.trainer import system_config, train

    best = train(system_config(config, system, out / "multinmt"), data_dir, out / system, system=system,
                 progress=progress)
    return out / system / "last" if checkpoint == "last" else best


def _evaluate_systems(models: dict[str, Path], out: Path, config, data, data_dir: Path,
                      cells: list[tuple[str, int, int]], plan: ExperimentPlan) -> None:
    """Each system's checkpoint on its own training languages, then fine-tuned on every held-out cell."""
    for system, model in models.items():
        _evaluate_training_languages(model, data, data_dir, out / "eval" / system, config.eval,
                                     plan.progress)
    for system, model in models.items():
        _finetune_and_evaluate(model, out, system, config, data, data_dir, cells, plan)


def _finetune_and_evaluate(base: Path, out: Path, system: str, config, data, data_dir: Path,
                           cells: list[tuple[str, int, int]], plan: ExperimentPlan) -> None:
    """Fine-tune the checkpoint ``base`` on every cell at the rate the system chose on the validation
    languages, and evaluate each fine-tuned model (work already done is skipped)."""
    from metanmt.train.finetune import finetune_checkpoint
    from metanmt.train.validation import choose_finetune_lr

    lr = choose_finetune_lr(base, data, config, out / "eval" / system / "finetune_lr.json")
    ft = dataclasses.replace(config.finetune, lr=lr)
    for lang, tokens, draw in cells:
        model_dir = out / "finetune" / system / lang / str(tokens) / f"draw{draw}"
        if not _finetuned_from(model_dir, base):
            finetune_checkpoint(base, lang, tokens, draw, model_dir, ft, data_dir=data_dir,
                                seed=config.train.seed, progress=plan.progress)
        for split in plan.splits or data.eval_splits(lang):
            _evaluate_cell(model_dir, out / "eval" / system / lang, f"{tokens}_draw{draw}", lang, split, draw,
                           config.eval, data_dir, plan)


def _finetuned_from(model_dir: Path, base: Path) -> bool:
    """Whether ``model_dir`` holds a fine-tuned model (checkpoints appear atomically), and of ``base`` as it
    is now: a training run extended after its fine-tuning must not be reported with the old models."""
    if not (model_dir / "config.json").is_file():
        return False
    made, now = (json.loads((d / "metanmt.json").read_text(encoding="utf-8")) for d in (model_dir, base))
    if made.get("base_tokens", now.get("tokens")) != now.get("tokens"):
        raise MetaNMTError(f"{model_dir} was fine-tuned from {base} after {made['base_tokens']} training "
                           f"tokens; it now holds {now.get('tokens')}: move the 'finetune' and 'eval'"
                           " folders away to fine-tune and evaluate the extended model")
    return True


def _evaluate_cell(model_dir: Path, out: Path, name: str, lang: str, split: str, draw: int, ev,
                   data_dir: Path, plan: ExperimentPlan) -> None:
    """Decode one split with one fine-tuned model (out-of-domain sets: the first ``eval.ood_draws`` draws
    and ``eval.ood_max_sentences`` sentences only) unless its result exists."""
    from metanmt.eval.evaluate import evaluate_model

    in_domain = split == "test"
    result = out / f"{name}_{split}.json"
    if result.is_file() or (not in_domain and draw >= ev.ood_draws):
        return
    evaluate_model(model_dir, lang, split, result, data_dir=data_dir, decoding=_decoding(ev),
                   max_sentences=plan.max_eval_sentences if in_domain else ev.ood_max_sentences,
                   progress=plan.progress)


def _evaluate_training_languages(model_dir: Path, data, data_dir: Path, out: Path, ev,
                                 progress: bool) -> None:
    """In-domain dev BLEU/chrF (beam search, no fine-tuning) of the trained model on each training
    language."""
    from metanmt.eval.evaluate import evaluate_model

    for lang in data.train_langs:
        result = out / lang / "train_dev.json"
        if not result.is_file():
            evaluate_model(model_dir, lang, "dev", result, data_dir=data_dir, decoding=_decoding(ev),
                           progress=progress)


def _decoding(ev) -> Decoding:
    """The beam search of the config's ``eval`` section."""

    return Decoding(ev.beam, ev.length_penalty, ev.batch_size)


def _step(title: str) -> None:
    print(f"\n=== {title}", flush=True)
