"""LoRA adapters (the ``peft`` library) on any seq2seq model: what the inner loop adapts with
``meta.fast_params: lora`` and what ``finetune --params lora`` trains.

The core needs nothing special: a peft model is an ``nn.Module`` whose adapter weights are ordinary named
parameters (``...q_proj.lora_A.default.weight``), so ``functional_call`` runs it with fast adapter weights
and second-order MAML differentiates through them. A checkpoint of an adapted model holds the *merged*
weights (a plain HF model for every tool) and the adapter in ``adapter/`` (a PEFT adapter directory);
loading it rebuilds the adapter on the base weights (merged minus the adapter's product), so adaptation
continues from the meta-learned adapter initialisation.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from metanmt.errors import MetaNMTError

ADAPTER_DIR = "adapter"
LORA_PATTERNS = ("*.lora_A.*", "*.lora_B.*")  # the adapter weights, as fast-parameter patterns


@dataclass
class LoraSettings:
    """``r``: rank; ``alpha``: scale numerator (the update is alpha / r * B A); ``target_modules``: module
    names to adapt (empty: the family's attention query/value projections, metanmt.models.families)."""

    r: int = 8
    alpha: float = 16.0
    dropout: float = 0.0
    target_modules: list[str] | None = None


def is_lora(model: Any) -> bool:
    """Whether ``model`` carries peft adapters."""
    return hasattr(model, "peft_config")


def add_lora(model: Any, settings: LoraSettings, tokenizer: Any, train_base: bool = False) -> Any:
    """``model`` wrapped with fresh LoRA adapters (its own if it has some already, e.g. a LoRA checkpoint
    continued): adapters trainable, and the base weights that were trainable only with ``train_base``."""
    from peft import LoraConfig, get_peft_model

    from metanmt.models.families import family_of
    from metanmt.models.seq2seq import quiet_hf

    quiet_hf()
    fixed = {id(p) for p in model.parameters() if not p.requires_grad}  # e.g. Marian's sinusoidal positions
    if not is_lora(model):
        targets = settings.target_modules or list(family_of(tokenizer).lora_targets)
        config = LoraConfig(r=settings.r, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
                            target_modules=targets, task_type="SEQ_2_SEQ_LM")
        try:
            model = get_peft_model(model, config)
        except ValueError as err:  # peft: "Target modules {...} not found in the base model"
            raise MetaNMTError(f"LoRA target_modules {targets}: {err}") from None
    for name, p in model.named_parameters():
        p.requires_grad_(".lora_" in name or (train_base and id(p) not in fixed))
    return model


def save_lora(model: Any, folder: Path) -> None:
    """Write the merged weights of an adapted ``model`` to ``folder`` and its adapter to ``folder/adapter``.
    The merge runs on a copy, so the model being trained keeps its adapters."""
    merged = copy.deepcopy(model).merge_and_unload()
    merged.save_pretrained(folder)
    model.save_pretrained(folder / ADAPTER_DIR)


def load_lora(model: Any, folder: Path) -> Any:
    """The adapter of ``folder/adapter`` on ``model`` (loaded with merged weights), base weights restored
    by subtracting the adapter's product; a folder without an adapter gives ``model`` back."""
    import torch
    from peft import PeftModel
    from peft.tuners.lora import LoraLayer

    if not (folder / ADAPTER_DIR / "adapter_config.json").is_file():
        return model
    model = PeftModel.from_pretrained(model, folder / ADAPTER_DIR, is_trainable=True)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, LoraLayer):
                for name in module.active_adapters:
                    module.get_base_layer().weight -= module.get_delta_weight(name)
    return model
