"""Share a fine-tuned checkpoint on the Hugging Face Hub (``metanmt finetune --push-to-hub REPO``).

The repo id and the token are checked before training, so a typo does not surface only after it; the upload
comes after the checkpoint is saved, so a failed upload never costs the checkpoint.
"""

from __future__ import annotations

from pathlib import Path

from metanmt.errors import MetaNMTError


def check_hub_repo(repo_id: str) -> None:
    """Refuse a malformed repo id, or a machine without a Hugging Face token, before any work is done."""
    from huggingface_hub import get_token
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as err:
        raise MetaNMTError(f"--push-to-hub {repo_id!r} is not a Hugging Face repo id (NAME or USER/NAME): "
                           f"{err}") from None
    if not get_token():
        raise MetaNMTError("--push-to-hub needs a Hugging Face token with write access: run `hf auth login` "
                           "or set HF_TOKEN")


def push_checkpoint(checkpoint: str | Path, repo_id: str, private: bool = False) -> str:
    """Create the model repo if needed and upload the checkpoint directory to it; return the repo's URL."""
    from huggingface_hub import HfApi

    api = HfApi()
    try:
        url = api.create_repo(repo_id, repo_type="model", private=private or None, exist_ok=True)
        api.upload_folder(repo_id=repo_id, repo_type="model", folder_path=str(checkpoint),
                          commit_message=f"Upload {Path(checkpoint).name}, fine-tuned with metanmt")
    except (OSError, ValueError) as err:  # the hub's HTTP and connection errors are OSErrors
        raise MetaNMTError(f"could not push to the Hugging Face Hub repo {repo_id} ({type(err).__name__}: "
                           f"{err}). The checkpoint is saved locally in {checkpoint}; upload it later with "
                           f"`hf upload {repo_id} {checkpoint}`") from None
    return str(url)
