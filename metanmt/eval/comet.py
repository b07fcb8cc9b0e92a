"""COMET (Rei et al., 2020), a learned metric, when the user has it: the ``unbabel-comet`` package and a model
checkpoint on disk. metanmt never downloads one; without them the result says why COMET is absent.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from metanmt.errors import MetaNMTError

NO_MODEL = ("no COMET model given (metanmt evaluate --comet-model PATH: a downloaded COMET checkpoint, e.g. "
            "Unbabel/wmt22-comet-da/checkpoints/model.ckpt)")
NO_PACKAGE = "the unbabel-comet package is not installed (pip install unbabel-comet)"


@dataclass(frozen=True)
class Comet:
    """A loaded COMET model, or why there is none. Loaded before decoding, so a bad path fails early."""

    model: Any = None
    path: str | None = None
    absent: str | None = None

    @classmethod
    def load(cls, path: str | Path | None) -> Comet:
        """Load the checkpoint at ``path`` (a ``.ckpt`` file, or a model directory holding
        ``checkpoints/model.ckpt``); no path, or no package, gives an absent COMET, not an error."""
        if not path:
            return cls(absent=NO_MODEL)
        path = Path(path)
        if not path.exists():
            raise MetaNMTError(f"--comet-model {path}: no such file or directory")
        try:
            import comet
        except ImportError:
            return cls(path=str(path), absent=NO_PACKAGE)
        checkpoint = path / "checkpoints" / "model.ckpt" if path.is_dir() else path
        try:
            return cls(model=comet.load_from_checkpoint(str(checkpoint)), path=str(checkpoint.resolve()))
        except Exception as err:  # COMET and PyTorch Lightning raise many types for a bad checkpoint
            raise MetaNMTError(f"cannot load COMET model {checkpoint}: {type(err).__name__}: {err}") from err

    def score(self, sources: list[str], hypotheses: list[str], references: list[str], gpus: int
              ) -> dict[str, Any]:
        """The result's COMET fields: the score against the first reference set, or why it is absent."""
        if self.model is None:
            return {"comet": None, "comet_absent": self.absent}
        samples = [{"src": s, "mt": h, "ref": r} for s, h,
                   r in zip(sources, hypotheses, references, strict=True)]
        output = self.model.predict(samples, gpus=gpus, progress_bar=False)
        return {"comet": float(output.system_score), "comet_model": self.path}
