"""Our few-shot results beside the published MAML and ProtoNet numbers (``metanmt fewshot-report``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NamedTuple

from metanmt.errors import MetaNMTError


class Published(NamedTuple):
    dataset: str
    algorithm: str
    ways: int
    shots: int
    accuracy: float
    ci95: float | None
    source: str


_FINN = "Finn et al. 2017"
_SNELL = "Snell et al. 2017"
_NICHOL = "Nichol et al. 2018"  # the Reptile paper's Table 1: first-order MAML on Omniglot, with transduction
# Omniglot numbers are on the MAML/Vinyals protocol, Mini-ImageNet ones on Ravi & Larochelle's split.
PUBLISHED = (
    Published("omniglot", "maml", 5, 1, 98.7, 0.4, _FINN),
    Published("omniglot", "maml", 5, 5, 99.9, 0.1, _FINN),
    Published("omniglot", "maml", 20, 1, 95.8, 0.3, _FINN),
    Published("omniglot", "maml", 20, 5, 98.9, 0.2, _FINN),
    Published("omniglot", "fomaml", 5, 1, 98.3, 0.5, _NICHOL),
    Published("omniglot", "fomaml", 20, 1, 89.4, 0.5, _NICHOL),
    Published("miniimagenet", "maml", 5, 1, 48.70, 1.84, _FINN),
    Published("miniimagenet", "maml", 5, 5, 63.11, 0.92, _FINN),
    Published("miniimagenet", "fomaml", 5, 1, 48.07, 1.75, _FINN),
    Published("miniimagenet", "fomaml", 5, 5, 63.15, 0.91, _FINN),
    Published("omniglot", "protonet", 5, 1, 98.8, None, _SNELL),
    Published("omniglot", "protonet", 20, 1, 96.0, None, _SNELL),
)
_PUBLISHED_PROTOCOL = {"omniglot": "maml", "miniimagenet": "ravi"}
_METHOD = {"maml": "MAML", "fomaml": "first-order MAML", "reptile": "Reptile", "protonet": "ProtoNets"}
_DATASET = {"omniglot": "Omniglot", "miniimagenet": "Mini-ImageNet"}
_REQUIRED = ("dataset", "protocol", "algorithm", "ways", "shots", "accuracy", "ci95", "meta_steps",
             "eval_episodes")


def find_results(paths: list[str]) -> list[tuple[Path, dict[str, Any]]]:
    """(path, content) of every results.json named by or found under ``paths``, in path order."""
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files += sorted(path.rglob("results.json"))
        elif path.is_file():
            files.append(path)
        else:
            raise MetaNMTError(f"{path} is neither a results.json file nor a folder")
    found = []
    for file in files:
        try:
            data = json.loads(file.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise MetaNMTError(f"cannot read few-shot results {file}: {err}") from err
        missing = [k for k in _REQUIRED if k not in data]
        if missing:
            raise MetaNMTError(f"{file} is not a `metanmt fewshot` results file "
                               f"(missing {', '.join(missing)})")
        found.append((file, data))
    if not found:
        raise MetaNMTError(f"no results.json under {', '.join(paths)}")
    return found


def _setting(ways: int, shots: int) -> str:
    return f"{ways}-way {shots}-shot"


def _ours(result: dict[str, Any]) -> str:
    return f"{result['accuracy']:.2f} ± {result['ci95']:.2f}"


def _steps(result: dict[str, Any]) -> str:
    """Meta-steps run, and the step of the tested (best validation) model when that was earlier."""
    best, steps = result.get("best_step"), result["meta_steps"]
    return f"{steps} (best {best})" if best is not None and best != steps else f"{steps}"


def _result(path: Path, result: dict[str, Any]) -> str:
    """The run's folder, and its network where it is not the default (``--network finn``: Finn's Conv-4)."""
    network = result.get("config", {}).get("network", "torch")
    return f"`{path.parent.name}`" + (f" (`--network {network}`)" if network != "torch" else "")


def render(results: list[tuple[Path, dict[str, Any]]]) -> str:
    """The parity table: one row per published number (with every matching result of ours), then our
    results that have no published counterpart."""
    header = ("| Dataset | Method | Setting | Published | Ours | Δ | Meta-steps (best) | Test episodes "
              "| Result |\n|---|---|---|---|---|---|---|---|---|")
    rows = [header]
    used: set[int] = set()
    for pub in PUBLISHED:
        published = f"{pub.accuracy:.2f}" + (f" ± {pub.ci95:.2f}" if pub.ci95 is not None else "")
        published += f" ({pub.source})"
        matches = [(i, path, r) for i, (path, r) in enumerate(results)
                   if (r["dataset"], r["algorithm"], r["ways"], r["shots"]) == pub[:4]
                   and r["protocol"] == _PUBLISHED_PROTOCOL[pub.dataset]]
        label = (f"| {_DATASET[pub.dataset]} | {_METHOD[pub.algorithm]} | {_setting(pub.ways, pub.shots)} "
                 f"| {published}")
        if not matches:
            rows.append(f"{label} | not run | | | | |")
        for i, path, r in matches:
            used.add(i)
            rows.append(f"{label} | {_ours(r)} | {r['accuracy'] - pub.accuracy:+.2f} | {_steps(r)} | "
                        f"{r['eval_episodes']} | {_result(path, r)} |")
    for i, (path, r) in enumerate(results):
        if i not in used:
            dataset = f"{_DATASET.get(r['dataset'], r['dataset'])} ({r['protocol']} protocol)"
            rows.append(f"| {dataset} | {_METHOD.get(r['algorithm'], r['algorithm'])} | "
                        f"{_setting(r['ways'], r['shots'])} | — | {_ours(r)} | | {_steps(r)} | "
                        f"{r['eval_episodes']} | {_result(path, r)} |")
    note = ("Accuracy in percent on test episodes, ± the 95% confidence half-width 1.96·std/√episodes. "
            "Published Omniglot numbers use the MAML/Vinyals protocol (1200 training characters, rotations), "
            "Mini-ImageNet ones the Ravi & Larochelle split; the MAML paper trained for 60,000 meta-steps.")
    return "\n".join(rows) + "\n\n" + note + "\n"
