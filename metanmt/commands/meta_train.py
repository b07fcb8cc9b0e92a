"""``metanmt meta-train``: MetaNMT, meta-learning over the training languages."""

from metanmt.commands._training import add_training_arguments, run_training

DETAILS = ("Keeps the checkpoint with the best post-adaptation validation BLEU in OUT/best; re-running the "
           "command resumes. Multi-GPU: accelerate launch -m metanmt meta-train ...")


def add_arguments(parser):
    add_training_arguments(parser, meta=True)


def run(args) -> int:
    return run_training(args, "metanmt")
