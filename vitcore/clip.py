"""CLIP: contrastive image-text pre-training (Radford et al., 2021).

An image tower (a vitcore ViT) and a text tower (a causal Transformer over BPE tokens, pooled
at the end-of-text token) map into one space; a symmetric InfoNCE loss pulls matching
image-caption pairs together. Zero-shot classification compares an image with the embeddings
of prompts such as ``"a photo of a {}."``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .block import Block
from .vit import VisionTransformer, ViTConfig

__all__ = [
    "ClipTokenizer",
    "LogitScale",
    "TextTransformer",
    "CLIP",
    "embed_image",
    "clip_loss",
    "zero_shot_weights",
    "CompactVocab",
    "LockedTextCLIP",
    "mean_pool",
]

INIT_LOGIT_SCALE = math.log(1 / 0.07)
MAX_LOGIT_SCALE = math.log(100.0)


class ClipTokenizer:
    """CLIP's byte-pair-encoding tokenizer (the vocabulary file ships with ``open_clip``).

    ``encode`` returns ``(B, context_length)`` token ids: start token, text, end token, zeros.
    """

    def __init__(self, context_length: int = 32) -> None:
        from open_clip.tokenizer import SimpleTokenizer

        self._bpe = SimpleTokenizer(context_length=context_length)
        self.context_length = context_length
        self.vocab_size = len(self._bpe.encoder)
        self.sot_id = self._bpe.sot_token_id
        self.eot_id = self._bpe.eot_token_id

    def encode(self, texts: str | Sequence[str]) -> torch.Tensor:
        """Texts -> token ids ``(B, context_length)``; raises if a text does not fit."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        for t in texts:
            n = len(self._bpe.encode(t)) + 2
            if n > self.context_length:
                raise ValueError(f"{t!r} needs {n} tokens, more than context_length={self.context_length}")
        return self._bpe(texts, context_length=self.context_length)

    def decode(self, ids: torch.Tensor | Sequence[int]) -> str:
        """Token ids -> text, dropping padding and the start/end tokens."""
        ids = ids.tolist() if isinstance(ids, torch.Tensor) else list(ids)
        ids = [i for i in ids if i not in (0, self.sot_id, self.eot_id)]
        return self._bpe.decode(ids).strip()


class LogitScale(nn.Module):
    """Learnable temperature: ``exp(s)`` with ``s`` initialised at ``ln(1/0.07)``, clamped at ``ln(100)``."""

    def __init__(self, init: float = INIT_LOGIT_SCALE, max_value: float = MAX_LOGIT_SCALE) -> None:
        super().__init__()
        self.logit_scale = nn.Parameter(torch.tensor(float(init)))
        self.max_value = max_value

    def forward(self) -> torch.Tensor:
        return self.logit_scale.clamp(max=self.max_value).exp()


def clip_loss(image_emb: torch.Tensor, text_emb: torch.Tensor, scale: torch.Tensor | float) -> torch.Tensor:
    """Symmetric InfoNCE over a batch of matching pairs ``(B, E)``, ``(B, E)`` (L2-normalised).

    ``logits[i, j] = scale * <image_i, text_j>``; the loss averages cross-entropy over rows
    (image -> text) and columns (text -> image) with the diagonal as targets.
    """
    if image_emb.shape != text_emb.shape:
        raise ValueError(
            f"image and text embeddings differ in shape: {tuple(image_emb.shape)} vs {tuple(text_emb.shape)}"
        )
    logits = scale * image_emb @ text_emb.T  # (B, B)
    target = torch.arange(logits.shape[0], device=logits.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


class TextTransformer(nn.Module):
    """Causal Transformer over token ids ``(B, L)`` -> one vector per text ``(B, D)`` at the EOT token."""

    causal_mask: torch.Tensor  # buffer (context_length, context_length), bool

    def __init__(
        self,
        vocab_size: int,
        context_length: int = 32,
        width: int = 128,
        depth: int = 4,
        num_heads: int = 4,
        eot_id: int | None = None,
    ) -> None:
        super().__init__()
        self.token_embedding = nn.Embedding(vocab_size, width)
        self.positional_embedding = nn.Parameter(torch.randn(context_length, width) * 0.01)
        self.blocks = nn.ModuleList(Block(width, num_heads) for _ in range(depth))
        self.ln_final = nn.LayerNorm(width)
        self.eot_id = eot_id
        causal = torch.ones(context_length, context_length, dtype=torch.bool).tril()
        self.register_buffer("causal_mask", causal, persistent=False)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        n = ids.shape[1]
        x = self.token_embedding(ids) + self.positional_embedding[:n]  # (B, L, D)
        for blk in self.blocks:
            x = blk(x, attn_mask=self.causal_mask[:n, :n])
        x = self.ln_final(x)
        # CLIP pools at the end-of-text token: with a causal mask it is the only one that saw the whole text.
        eot_pos = (ids == self.eot_id).int().argmax(-1) if self.eot_id is not None else ids.argmax(-1)
        return x[torch.arange(x.shape[0]), eot_pos]  # (B, D)


def embed_image(visual: VisionTransformer, projection: nn.Linear, images: torch.Tensor) -> torch.Tensor:
    """The image side of both CLIP models: ``(B, C, H, W)`` -> pooled ViT features ``(B, D)`` ->
    projected and L2-normalised ``(B, E)``."""
    feats = visual.forward_head(visual.forward_features(images), pre_logits=True)  # (B, D)
    return F.normalize(projection(feats), dim=-1)


class CLIP(nn.Module):
    """Image tower + text tower + linear projections into a shared ``embed_dim`` space."""

    def __init__(self, vision: ViTConfig | VisionTransformer, text: TextTransformer, embed_dim: int = 128) -> None:
        super().__init__()
        self.visual = vision if isinstance(vision, VisionTransformer) else VisionTransformer(vision, num_classes=0)
        self.text = text
        vis_width = self.visual.config.embed_dim
        txt_width = text.ln_final.normalized_shape[0]
        self.image_projection = nn.Linear(vis_width, embed_dim, bias=False)
        self.text_projection = nn.Linear(txt_width, embed_dim, bias=False)
        self.logit_scale = LogitScale()

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W) -> (B, E)``, L2-normalised."""
        return embed_image(self.visual, self.image_projection, images)

    def encode_text(self, ids: torch.Tensor) -> torch.Tensor:
        """``(B, L) -> (B, E)``, L2-normalised."""
        return F.normalize(self.text_projection(self.text(ids)), dim=-1)

    def forward(self, images: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """The contrastive loss of a batch of matching (image, text) pairs."""
        return clip_loss(self.encode_image(images), self.encode_text(ids), self.logit_scale())


@torch.no_grad()
def zero_shot_weights(
    encode_text: Callable[[list[str]], torch.Tensor], classnames: Sequence[str], templates: Sequence[str]
) -> torch.Tensor:
    """One embedding per class ``(K, E)``: the normalised mean over prompt templates (ensembling).

    ``encode_text`` maps a list of strings to L2-normalised embeddings ``(T, E)``.
    Predict with ``(image_emb @ weights.T).argmax(-1)``.
    """
    rows = []
    for name in classnames:
        emb = encode_text([t.format(name) for t in templates])  # (T, E)
        rows.append(F.normalize(emb.mean(0), dim=-1))
    return torch.stack(rows)


class CompactVocab:
    """Renumbers the BPE ids a small corpus uses as ``0..V-1`` so a tiny text tower needs only ``V`` embedding rows.

    CLIP's vocabulary has 49,408 tokens; captions about a few colours and objects use a few
    dozen. Padding (id 0), start and end tokens are always kept, and id 0 stays 0.
    """

    def __init__(self, ids: torch.Tensor, sot_id: int, eot_id: int, vocab_size: int) -> None:
        keep = torch.cat([torch.tensor([0, sot_id, eot_id]), ids.flatten().long()]).unique()  # sorted
        if keep.min() < 0 or keep.max() >= vocab_size:
            raise ValueError(f"token ids must lie in 0..{vocab_size - 1}")
        self.kept = keep  # (V,) original ids, in order
        self.lookup = torch.full((vocab_size,), -1, dtype=torch.long)
        self.lookup[keep] = torch.arange(len(keep))
        self.sot_id, self.eot_id = int(self.lookup[sot_id]), int(self.lookup[eot_id])

    @classmethod
    def from_texts(cls, tokenizer: ClipTokenizer, texts: Sequence[str]) -> CompactVocab:
        return cls(tokenizer.encode(texts), tokenizer.sot_id, tokenizer.eot_id, tokenizer.vocab_size)

    def __len__(self) -> int:
        return len(self.kept)

    def __call__(self, ids: torch.Tensor) -> torch.Tensor:
        """Original ids ``(B, L)`` -> compact ids ``(B, L)``; a token outside the corpus is an error."""
        out = self.lookup[ids.long()]
        if (out < 0).any():
            missing = ids[out < 0].unique().tolist()
            raise ValueError(f"token ids {missing[:10]} were not in the corpus this vocabulary was built from")
        return out

    def to_original(self, ids: torch.Tensor) -> torch.Tensor:
        """Compact ids back to the tokenizer's ids (for :meth:`vitcore.clip.ClipTokenizer.decode`)."""
        return self.kept[ids.long()]


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Sentence embedding as in sentence-transformers: the mean of token states ``(B, L, D)``
    over real tokens (``attention_mask`` ``(B, L)``, 1 = token) -> ``(B, D)``."""
    m = attention_mask.unsqueeze(-1).to(hidden.dtype)  # (B, L, 1)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)


class LockedTextCLIP(nn.Module):
    """A trainable image tower aligned to a *frozen* text encoder's embeddings.

    LiT (Zhai et al., 2022) locks a pretrained tower and trains the other to match it; here the
    text side is the locked one: its embeddings ``(K, text_dim)`` are computed once outside (e.g.
    class prompts through a sentence encoder) and never change. Only the image tower, the
    projection ``text_dim``-wide and the temperature learn, so any new text, including class
    names never seen in training, can be matched against images.
    """

    def __init__(self, vision: ViTConfig | VisionTransformer, text_dim: int) -> None:
        super().__init__()
        self.visual = vision if isinstance(vision, VisionTransformer) else VisionTransformer(vision, num_classes=0)
        self.image_projection = nn.Linear(self.visual.config.embed_dim, text_dim, bias=False)
        self.logit_scale = LogitScale()

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W) -> (B, text_dim)``, L2-normalised."""
        return embed_image(self.visual, self.image_projection, images)

    def logits(self, images: torch.Tensor, text_emb: torch.Tensor) -> torch.Tensor:
        """Scaled cosine similarities ``(B, K)`` of images against fixed text embeddings ``(K, text_dim)``."""
        return self.logit_scale() * self.encode_image(images) @ F.normalize(text_emb, dim=-1).T
