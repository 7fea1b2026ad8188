"""A ViT as the eye of a small language model (LLaVA-style: Liu et al., 2023; Qwen-VL: Bai et al., 2023).

The vision encoder turns an image into patch tokens; a connector (an MLP projector) maps them
to the language model's width; the language model reads ``[image tokens; instruction tokens]``
and writes the answer token by token. Image and text tokens share one causal self-attention,
which is all the cross-modal attention there is. Patch tokens keep their 2D position because the
ViT added its position embedding before they enter the language model.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .block import Block
from .boxes import GRID
from .vit import VisionTransformer

__all__ = ["GroundingTokenizer", "Connector", "TinyLM", "VisionLanguageModel"]

_TOKEN_RE = re.compile(r"</?box>|<\w+>|\d+|[A-Za-z]+|[^\sA-Za-z\d]")
SPECIALS = ["<pad>", "<bos>", "<eos>", "<unk>", "<box>", "</box>", "(", ")", ",", "."]
CONTROL = ("<pad>", "<bos>", "<eos>", "<unk>")  # added by encode's flags or by a model, never typed
MARKUP = ("<box>", "</box>")  # an answer's box markup: text only where encode(..., answer=True)
_NO_SPACE_BEFORE = {"(", ")", ",", ".", "</box>"}
_NO_SPACE_AFTER = {"(", ",", "<box>"}


class GroundingTokenizer:
    """Word-level tokenizer with one token per coordinate value ``0..grid`` (Pix2Seq's quantised bins).

    ``"find the bag <box>(12,30,400,512)</box>"`` -> ``find, the, bag, <box>, (, 12, ",", 30, ...``.

    Strict by default: a word outside the vocabulary, a number outside ``0..grid``, a control token
    (``<pad>``, ``<bos>``, ``<eos>``, ``<unk>``) typed as text, and box markup (``<box>``, ``</box>``)
    in text that is not an answer each raise a ``ValueError`` that names them. ``lenient=True``
    maps unknown words and out-of-grid numbers to ``<unk>`` instead (for teaching ``<unk>``).

    A vocabulary entry that :meth:`split` would cut (``"t-shirt"``, ``"ankle boot"``) is matched
    as one token before the text is split, so every entry can be produced; entries that split into
    one piece each (the shipped runs' vocabularies) keep the ids they always had.
    """

    def __init__(self, words: Iterable[str], grid: int = GRID, *, lenient: bool = False) -> None:
        if isinstance(words, str):
            raise TypeError(f"words must be a collection of words, got the string {words!r}")
        if not isinstance(grid, int) or grid < 1:
            raise ValueError(f"grid must be a positive integer, got {grid!r}")
        lowered = {" ".join(w.lower().split()) for w in words}  # one space between the parts of an entry
        for w in sorted(lowered):
            pieces = self.split(w)
            if not pieces:
                raise ValueError(f"vocabulary entry {w!r} holds no word")
            if len(pieces) > 1 and set(pieces) & set(CONTROL + MARKUP):
                raise ValueError(
                    f"vocabulary entry {w!r} contains a special token; specials are added by the tokenizer"
                )
        words = sorted(lowered - set(SPECIALS))
        self.grid = grid
        self.lenient = lenient
        self.itos = SPECIALS + [str(i) for i in range(grid + 1)] + [w for w in words if not w.isdigit()]
        self.stoi = {t: i for i, t in enumerate(self.itos)}
        self.pad_id, self.bos_id, self.eos_id, self.unk_id = (self.stoi[t] for t in CONTROL)
        # entries that split() would cut, longest first, matched whole (whitespace inside: any run of it)
        multi = sorted((w for w in words if len(self.split(w)) > 1), key=len, reverse=True)
        alts = [r"\s+".join(re.escape(part) for part in w.split()) + self._word_end(w) for w in multi]
        self._token_re = re.compile("|".join([*alts, _TOKEN_RE.pattern])) if alts else _TOKEN_RE

    @staticmethod
    def _word_end(w: str) -> str:
        # "t-shirt" must not match the start of "t-shirts" (nor "12" the start of "123")
        return r"(?![a-z])" if w[-1].isalpha() else r"(?!\d)" if w[-1].isdigit() else ""

    def __len__(self) -> int:
        return len(self.itos)

    @staticmethod
    def split(text: str) -> list[str]:
        """Lower-cased pieces: tags (``<box>``), numbers, runs of letters, single other characters."""
        return _TOKEN_RE.findall(text.lower())

    def tokens(self, text: str) -> list[str]:
        """The token strings :meth:`encode` maps to ids: :meth:`split`, except that a vocabulary
        entry that ``split`` would cut stays one token."""
        return [" ".join(t.split()) for t in self._token_re.findall(text.lower())]

    def encode(
        self, text: str, bos: bool = False, eos: bool = False, *, answer: bool = False, lenient: bool | None = None
    ) -> list[int]:
        """Text -> token ids, optionally wrapped in ``<bos>`` / ``<eos>``.

        ``answer=True``: the text is an answer and may hold ``<box>`` / ``</box>``. ``lenient``
        (default: the tokenizer's own setting) maps unknown words to ``<unk>`` instead of raising.
        """
        if not isinstance(text, str):
            raise TypeError(f"encode takes one text (str), got {type(text).__name__}")
        lenient = self.lenient if lenient is None else lenient
        toks = self.tokens(text)
        control = [t for t in toks if t in CONTROL]
        if control:
            raise ValueError(
                f"{text!r} contains the control token(s) {control}: they are added by the tokenizer "
                "(bos=True, eos=True) or by the model, never typed in the text"
            )
        if not answer:
            markup = [t for t in toks if t in MARKUP]
            if markup:
                raise ValueError(
                    f"{text!r} contains box markup {markup}: an instruction may not hold it; encode an "
                    "answer with encode(text, answer=True)"
                )
        unknown = [t for t in toks if t not in self.stoi]
        if unknown and not lenient:
            numbers = [t for t in unknown if t.isdigit()]
            words = [t for t in unknown if not t.isdigit()]
            parts, fixes = [], []
            if words:
                parts.append(f"unknown word(s) {words} (not in this tokenizer's vocabulary of {len(self)})")
                fixes.append("fix the spelling or add the words to the vocabulary")
            if numbers:
                parts.append(f"number(s) {numbers} that are not coordinates 0..{self.grid} of the grid")
                fixes.append(f"put boxes on the {self.grid}-step grid (vitcore.boxes.quantize_box)")
            raise ValueError(
                f"{text!r} has " + " and ".join(parts) + "; " + ", ".join(fixes) + ", or pass lenient=True "
                "to encode them as <unk>"
            )
        ids = [self.stoi.get(t, self.unk_id) for t in toks]
        return ([self.bos_id] if bos else []) + ids + ([self.eos_id] if eos else [])

    def decode(self, ids: Sequence[int]) -> str:
        """Ids -> text, stopping at ``<eos>``; on canonical text, the inverse of
        :meth:`~vitcore.vlm.GroundingTokenizer.encode`. An id outside ``0..len(self) - 1`` is a
        ``ValueError``."""
        ids = [int(i) for i in ids]
        bad = [i for i in ids if not 0 <= i < len(self.itos)]
        if bad:
            raise ValueError(f"token id(s) {bad} outside the vocabulary (ids 0..{len(self.itos) - 1})")
        out: list[str] = []
        for i in ids:
            tok = self.itos[i]
            if tok in ("<pad>", "<bos>"):
                continue
            if tok == "<eos>":
                break
            if out and tok not in _NO_SPACE_BEFORE and out[-1] not in _NO_SPACE_AFTER:
                out.append(" ")
            out.append(tok)
        return "".join(out)


class Connector(nn.Module):
    """MLP projector from vision width to language width (LLaVA-1.5's two-layer MLP)."""

    def __init__(self, vision_dim: int, lm_dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(vision_dim, lm_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(lm_dim, lm_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class TinyLM(nn.Module):
    """A small decoder-only Transformer that takes input *embeddings* (so image tokens can be prepended)."""

    def __init__(self, vocab_size: int, dim: int = 128, depth: int = 4, num_heads: int = 4, max_len: int = 128) -> None:
        super().__init__()
        self.tok_embed = nn.Embedding(vocab_size, dim)
        self.pos_embed = nn.Parameter(torch.randn(1, max_len, dim) * 0.02)
        self.blocks = nn.ModuleList(Block(dim, num_heads) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.lm_head = nn.Linear(dim, vocab_size, bias=False)
        self.max_len = max_len

    def forward(
        self, embeds: torch.Tensor, return_attention: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        """``(B, L, D)`` embeddings -> next-token logits ``(B, L, V)`` under a causal mask.

        With ``return_attention`` also each block's attention weights ``(B, heads, L, L)``.
        """
        n = embeds.shape[1]
        if n > self.max_len:
            raise ValueError(f"sequence of {n} tokens exceeds max_len={self.max_len}")
        x = embeds + self.pos_embed[:, :n]
        mask = torch.ones(n, n, dtype=torch.bool, device=x.device).tril()
        maps = []
        for blk in self.blocks:
            if return_attention:
                x, w = blk(x, attn_mask=mask, return_attention=True)
                maps.append(w)
            else:
                x = blk(x, attn_mask=mask)
        logits = self.lm_head(self.norm(x))
        return (logits, maps) if return_attention else logits


class VisionLanguageModel(nn.Module):
    """ViT -> connector -> TinyLM. ``feature_layer`` picks the ViT block whose tokens are used;
    a sequence of blocks concatenates their tokens along the channels (multi-layer features of
    one encoder, as in Yao et al.'s Dense Connector, 2024; Cambrian-1 instead aggregates the
    tokens of several different encoders), so the connector reads ``len(layers) * D_v``."""

    def __init__(
        self,
        vision: VisionTransformer,
        lm: TinyLM,
        feature_layer: int | Sequence[int] = -1,
        use_prefix_tokens: bool = False,
        freeze_vision: bool = True,
    ) -> None:
        super().__init__()
        self.vision = vision
        self.feature_layers = [feature_layer] if isinstance(feature_layer, int) else list(feature_layer)
        if not self.feature_layers:
            raise ValueError("feature_layer: give a block index or a non-empty list of them")
        self.connector = Connector(vision.config.embed_dim * len(self.feature_layers), lm.tok_embed.embedding_dim)
        self.lm = lm
        self.use_prefix_tokens = use_prefix_tokens
        self.freeze_vision = freeze_vision
        if freeze_vision:
            for p in self.vision.parameters():
                p.requires_grad = False

    def vision_features(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W) -> (B, T, D_v * len(layers))``: all tokens (prefix included) of the
        chosen ViT block(s), concatenated along the channels."""
        with torch.set_grad_enabled(not self.freeze_vision and torch.is_grad_enabled()):
            if self.freeze_vision:
                self.vision.eval()
            return torch.cat(self.vision.get_intermediate_layers(images, self.feature_layers, norm=True), dim=-1)

    def image_tokens(self, images: torch.Tensor | None, vision_tokens: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, C, H, W) -> (B, N_img, D_lm)``: patch tokens of the chosen ViT block, projected.

        ``vision_tokens`` ``(B, T, D_v * len(layers))``: precomputed :meth:`vision_features` (a frozen encoder
        need run only once per image); then ``images`` is ignored and may be ``None``.
        """
        if vision_tokens is not None:
            tokens = vision_tokens
        elif images is None:
            raise ValueError("give images or precomputed vision_tokens")
        else:
            tokens = self.vision_features(images)  # (B, T, Dv)
        if not self.use_prefix_tokens:
            tokens = tokens[:, self.vision.num_prefix_tokens :]
        return self.connector(tokens)

    def logits(
        self, images: torch.Tensor | None, ids: torch.Tensor, vision_tokens: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Logits for the text positions only: ``(B, L_text, V)``."""
        img = self.image_tokens(images, vision_tokens)
        x = torch.cat([img, self.lm.tok_embed(ids)], dim=1)  # (B, N_img + L, D)
        return self.lm(x)[:, img.shape[1] :]

    def loss(
        self,
        images: torch.Tensor | None,
        ids: torch.Tensor,
        answer_mask: torch.Tensor,
        vision_tokens: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Next-token cross-entropy on answer tokens only (``answer_mask`` marks them in ``ids``)."""
        logits = self.logits(images, ids[:, :-1], vision_tokens)  # predict ids[:, 1:]
        target = ids[:, 1:].masked_fill(~answer_mask[:, 1:].bool(), -100)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1), ignore_index=-100)

    @torch.no_grad()
    def generate(
        self,
        images: torch.Tensor | None,
        prompt_ids: torch.Tensor,
        max_new_tokens: int = 12,
        eos_id: int | None = None,
        vision_tokens: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Greedy decoding: append the most likely token until ``eos_id`` or ``max_new_tokens``."""
        img = self.image_tokens(images, vision_tokens)
        ids = prompt_ids
        done = torch.zeros(ids.shape[0], dtype=torch.bool, device=ids.device)
        for _ in range(max_new_tokens):
            x = torch.cat([img, self.lm.tok_embed(ids)], dim=1)
            nxt = self.lm(x)[:, -1].argmax(-1)  # (B,)
            if eos_id is not None:
                nxt = torch.where(done, torch.full_like(nxt, eos_id), nxt)
                done |= nxt == eos_id
            ids = torch.cat([ids, nxt[:, None]], dim=1)
            if eos_id is not None and done.all():
                break
        return ids[:, prompt_ids.shape[1] :]
