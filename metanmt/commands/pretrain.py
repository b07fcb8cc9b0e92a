"""``metanmt pretrain``: MultiNMT, the multilingual baseline at the same budget."""

from metanmt.commands._training import add_training_arguments, run_training

DETAILS = ("It trains on the union of the training languages, with the same sampling, token budget and "
           "validation-based selection as meta-training.")


def add_arguments(parser):
    add_training_arguments(parser, meta=False)


def run(args) -> int:
    return run_training(args, "multinmt")
