"""metanmt: few-shot adaptation of neural machine translation by meta-learning."""

__version__ = "0.1.0"
