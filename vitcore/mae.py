"""Masked autoencoders (He et al., 2022).

Hide a random 75% of the patches, run the encoder on the visible 25% only, and let a light
decoder reconstruct the pixels of the hidden patches from the encoded visible ones plus a shared
mask token. The loss counts only the masked patches.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from .block import Block
from .embed import sincos_pos_embed_2d
from .patches import patchify
from .vit import VisionTransformer, ViTConfig

__all__ = ["random_masking", "MaskedAutoencoder", "pretrain"]


def random_masking(
    x: torch.Tensor, mask_ratio: float, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Keep a random ``1 - mask_ratio`` share of the tokens of each sample.

    ``x: (B, N, D)`` -> ``(visible (B, K, D), mask (B, N) with 1 = hidden, ids_restore (B, N))``.
    Each sample is shuffled by the argsort of uniform noise; ``ids_restore`` undoes the shuffle:
    ``torch.gather(shuffled, 1, ids_restore)`` puts tokens back in their original order.
    """
    if not 0.0 <= mask_ratio < 1.0:
        raise ValueError(f"mask_ratio must be in [0, 1), got {mask_ratio}")
    b, n, d = x.shape
    keep = int(round(n * (1 - mask_ratio)))
    noise = torch.rand(b, n, generator=generator).to(x.device)
    ids_shuffle = noise.argsort(dim=1)  # small noise first = kept
    ids_restore = ids_shuffle.argsort(dim=1)
    ids_keep = ids_shuffle[:, :keep]
    visible = torch.gather(x, 1, ids_keep.unsqueeze(-1).expand(-1, -1, d))  # (B, K, D)
    mask = torch.ones(b, n, device=x.device)
    mask[:, :keep] = 0
    mask = torch.gather(mask, 1, ids_restore)  # back to the original order
    return visible, mask, ids_restore


class MaskedAutoencoder(nn.Module):
    """A vitcore ViT encoder (``self.encoder``) plus MAE's light decoder."""

    def __init__(
        self,
        encoder: ViTConfig | VisionTransformer,
        decoder_dim: int = 128,
        decoder_depth: int = 2,
        decoder_heads: int = 4,
        norm_pix_loss: bool = False,
    ) -> None:
        super().__init__()
        self.encoder = encoder if isinstance(encoder, VisionTransformer) else VisionTransformer(encoder, num_classes=0)
        cfg = self.encoder.config
        if not cfg.class_token or cfg.reg_tokens or cfg.no_embed_class or cfg.pos_embed == "none":
            raise ValueError("MAE expects an encoder with a CLS token, no registers and a position embedding")
        self.patch_size = cfg.patch_size
        self.in_chans = cfg.in_chans
        self.grid = self.encoder.patch_embed.grid_size
        self.norm_pix_loss = norm_pix_loss
        self.decoder_embed = nn.Linear(cfg.embed_dim, decoder_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_dim))
        pe = torch.cat([torch.zeros(1, decoder_dim), sincos_pos_embed_2d(self.grid, decoder_dim)]).unsqueeze(0)
        self.decoder_pos_embed = nn.Parameter(pe, requires_grad=False)  # fixed 2D sin-cos, CLS slot = 0
        self.decoder_blocks = nn.ModuleList(Block(decoder_dim, decoder_heads) for _ in range(decoder_depth))
        self.decoder_norm = nn.LayerNorm(decoder_dim, eps=1e-6)
        self.decoder_pred = nn.Linear(decoder_dim, cfg.patch_size**2 * cfg.in_chans)
        nn.init.normal_(self.mask_token, std=0.02)

    def forward_encoder(
        self, images: torch.Tensor, mask_ratio: float, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Encode only the visible patches: ``-> (latent (B, 1 + K, D), mask (B, N), ids_restore (B, N))``."""
        enc = self.encoder
        assert enc.cls_token is not None and enc.pos_embed is not None  # required in __init__
        x = enc.patch_embed(images) + enc.pos_embed[:, 1:]  # (B, N, D), positions added before masking
        x, mask, ids_restore = random_masking(x, mask_ratio, generator)  # (B, K, D)
        cls = (enc.cls_token + enc.pos_embed[:, :1]).expand(x.shape[0], -1, -1)
        x = enc.pos_drop(torch.cat([cls, x], dim=1))  # (B, 1 + K, D), as the encoder's own embed()
        for blk in enc.blocks:
            x = blk(x)
        return enc.norm(x), mask, ids_restore

    def forward_decoder(self, latent: torch.Tensor, ids_restore: torch.Tensor) -> torch.Tensor:
        """``(B, 1 + K, D)`` -> pixel predictions for every patch ``(B, N, P*P*C)``."""
        x = self.decoder_embed(latent)  # (B, 1 + K, Dd)
        b, n = ids_restore.shape
        masks = self.mask_token.expand(b, n + 1 - x.shape[1], -1)
        patches = torch.cat([x[:, 1:], masks], dim=1)  # (B, N, Dd), visible first, in shuffled order
        patches = torch.gather(patches, 1, ids_restore.unsqueeze(-1).expand(-1, -1, x.shape[2]))
        x = torch.cat([x[:, :1], patches], dim=1) + self.decoder_pos_embed  # (B, 1 + N, Dd)
        for blk in self.decoder_blocks:
            x = blk(x)
        return self.decoder_pred(self.decoder_norm(x))[:, 1:]  # drop CLS -> (B, N, P*P*C)

    def target(self, images: torch.Tensor) -> torch.Tensor:
        """Patch pixels ``(B, N, P*P*C)``, normalised per patch when ``norm_pix_loss``."""
        t = patchify(images, self.patch_size, self.in_chans)
        if self.norm_pix_loss:
            t = (t - t.mean(-1, keepdim=True)) / (t.var(-1, keepdim=True) + 1e-6).sqrt()
        return t

    def loss(self, images: torch.Tensor, pred: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Mean squared error over the masked patches only."""
        per_patch = ((pred - self.target(images)) ** 2).mean(dim=-1)  # (B, N)
        return (per_patch * mask).sum() / mask.sum().clamp(min=1)

    def forward(
        self, images: torch.Tensor, mask_ratio: float = 0.75, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``-> (loss, pred (B, N, P*P*C), mask (B, N))``."""
        latent, mask, ids_restore = self.forward_encoder(images, mask_ratio, generator)
        pred = self.forward_decoder(latent, ids_restore)
        return self.loss(images, pred, mask), pred, mask


def pretrain(
    model: MaskedAutoencoder,
    images: torch.Tensor,
    steps: int,
    batch_size: int = 256,
    lr: float = 2e-3,
    min_lr: float = 0.0,
    warmup: float = 0.1,
    weight_decay: float = 0.05,
    mask_ratio: float = 0.75,
    seed: int = 0,
    on_epoch: Callable[[int, MaskedAutoencoder], dict] | None = None,
    state_path: str | Path | None = None,
    progress: bool = True,
    desc: str = "MAE pre-training",
) -> list[dict]:
    """Pre-train ``model`` on unlabelled, normalised ``images (N, C, H, W)``, as in the MAE paper.

    Random horizontal flips are the only augmentation (masking is the real one); AdamW with
    ``betas=(0.9, 0.95)``, no weight decay on biases/norms/tokens, warmup + cosine learning rate.
    Returns one record per step (``loss``: mean squared error on the hidden patches, in units of
    the normalised pixels). ``on_epoch(epoch, model)`` may add an evaluation record (under ``"epoch"``)
    after each pass over the data. With ``state_path`` the run saves its state after every epoch
    and resumes from it.
    """
    from .data import random_flip
    from .train import ResumableRun, ScheduledAdamW

    judge = None if on_epoch is None else lambda epoch: on_epoch(epoch, model)
    run = ResumableRun(steps, len(images), batch_size, state_path, judge, desc, progress)
    device = next(model.parameters()).device
    opt = ScheduledAdamW(
        model,
        steps,
        lr,
        weight_decay,
        warmup_steps=int(warmup * steps),
        min_lr=min_lr,
        betas=(0.9, 0.95),
        clip_grad=None,
    )
    gen = torch.Generator().manual_seed(seed)  # batch order, flips and masks
    run.resume(device, model=model, opt=opt, rng=gen)
    for _, idx in run.batches(gen):
        xb = random_flip(images[idx], generator=gen).to(device)
        model.train()
        loss, _, _ = model(xb, mask_ratio, gen)
        opt.step(loss)  # raises FloatingPointError on a NaN or inf loss
        run.log.append({"loss": loss.item()})
        run.bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
    return run.log
