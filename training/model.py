"""The intent network: a transformer encoder, mean pooling, a linear head — saved as plain files.

Mean pooling matches how sentence encoders such as all-MiniLM-L6-v2 were trained; their pooler
was not, so a pooler-based head starts from a worse place (see DESIGN.md's measurements).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

HEAD_FILE = "head.safetensors"


class IntentModel(nn.Module):
    """Encoder -> masked mean pooling -> L2 normalisation -> dropout -> linear head (logits)."""

    def __init__(self, encoder: nn.Module, num_labels: int, dropout: float = 0.1):
        super().__init__()
        self.encoder = encoder
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(encoder.config.hidden_size, num_labels)

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        return F.normalize(pooled.float(), dim=-1)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.embed(input_ids, attention_mask)))

    def save(self, folder: Path) -> None:
        from safetensors.torch import save_file

        self.encoder.save_pretrained(folder, safe_serialization=True)
        save_file({k: v.contiguous() for k, v in self.head.state_dict().items()}, str(folder / HEAD_FILE))

    @classmethod
    def from_base(cls, base: Path, num_labels: int) -> "IntentModel":
        from transformers import AutoModel

        encoder = AutoModel.from_pretrained(str(base))  # the head's dropout is the encoder's (0.1 for MiniLM)
        return cls(encoder, num_labels, getattr(encoder.config, "hidden_dropout_prob", 0.1))

    @classmethod
    def load(cls, folder: Path) -> "IntentModel":
        from safetensors.torch import load_file
        from transformers import AutoModel

        head = load_file(str(folder / HEAD_FILE))
        model = cls(AutoModel.from_pretrained(str(folder)), head["weight"].shape[0])
        model.head.load_state_dict(head)
        return model.eval()


def load_tokenizer(folder: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(folder))
