"""``metanmt quickstart``: ``metanmt experiment`` on the embedded demo corpus."""

from __future__ import annotations

import argparse
from pathlib import Path

from metanmt.commands import experiment

DETAILS = ("The corpus is built offline from Django's translation catalogs ('pip install metanmt[demo]'): "
           "prepare -> meta-train -> pretrain -> fine-tune -> evaluate -> report.")

DEMO_CONFIG = str(Path(__file__).resolve().parents[1] / "configs" / "demo.yaml")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # the two systems of Gu et al. (2018): the 15-minute budget leaves no room for the third. Side by side
    # (jobs=2) the demo's small model trains in half the time it takes on two threads (side_by_side.py)
    experiment.add_arguments(parser, default_config=DEMO_CONFIG, default_output="runs/quickstart",
                             default_systems=("metanmt", "multinmt"), default_jobs=2)


run = experiment.run
