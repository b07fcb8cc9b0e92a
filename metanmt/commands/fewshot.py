"""``metanmt fewshot``: meta-train and evaluate on Omniglot or Mini-ImageNet, writing ``OUT/results.json``."""

from __future__ import annotations

import argparse
import json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from metanmt.fewshot.config import add_config_arguments

    add_config_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from metanmt.fewshot import FewShotConfig, run_fewshot

    options = {k: v for k, v in vars(args).items() if not k.startswith("_")}
    command = ["metanmt", "fewshot"]  # the explicit options, so results.json says how to rerun it
    for key, value in options.items():
        if value is True:
            command.append(f"--{key.replace('_', '-')}")
        elif value is not None and value is not False:  # 0 is a real value (--meta-steps 0)
            command += [f"--{key.replace('_', '-')}", str(value)]
    results = run_fewshot(FewShotConfig(**options, command=command))
    summary = {k: results[k] for k in ("dataset", "protocol", "algorithm", "ways", "shots", "meta_steps",
                                       "eval_episodes", "accuracy", "ci95")}
    print(json.dumps(summary))
    return 0
