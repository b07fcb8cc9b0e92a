"""Evaluation: beam-search translation, sacrebleu scores and significance, and the experiment report.

Submodules are imported explicitly (``from metanmt.eval.evaluate import evaluate_model``) so that importing
this package stays cheap: torch, transformers and matplotlib load only where they are used.
"""
