"""DINO's multi-crop views (Caron et al., 2021): random resized crops of a batch of images, two
large "global" views and several small "local" ones of every image, for :func:`vitcore.dino.pretrain`.
Importable from :mod:`vitcore.dino` as well."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["random_resized_crop", "MultiCrop"]


def random_resized_crop(
    images: torch.Tensor,
    size: int,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    flip: bool = False,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """A whole batch of random resized crops at once: ``(B, C, H, W) -> (B, C, size, size)``.

    Each image gets its own box covering a ``scale`` share of its area with aspect ratio (w / h)
    drawn log-uniformly from ``ratio``, and (with ``flip``) a coin-flip mirror. The box is cut and
    resized in one bilinear ``grid_sample``: no Python loop over images, unlike torchvision's
    per-image ``RandomResizedCrop`` (which also antialiases; this does not).
    """
    if images.ndim != 4:
        raise ValueError(f"expected images (B, C, H, W), got shape {tuple(images.shape)}")
    if not 0 < scale[0] <= scale[1] <= 1 or not 0 < ratio[0] <= ratio[1]:
        raise ValueError(f"need 0 < scale[0] <= scale[1] <= 1 and 0 < ratio[0] <= ratio[1], got {scale}, {ratio}")
    b, _, h, w = images.shape

    def uniform(lo: float, hi: float) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(b, generator=generator)

    area = uniform(*scale)  # share of the image area
    aspect = uniform(math.log(ratio[0]), math.log(ratio[1])).exp()
    fw = (area * aspect * h / w).sqrt().clamp(max=1.0)  # box width as a share of the image width
    fh = (area / aspect * w / h).sqrt().clamp(max=1.0)
    cx = (1 - fw) * (2 * torch.rand(b, generator=generator) - 1)  # box centre in [-1, 1] coordinates
    cy = (1 - fh) * (2 * torch.rand(b, generator=generator) - 1)
    sx = torch.where(torch.rand(b, generator=generator) < 0.5, -1.0, 1.0) if flip else torch.ones(b)
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2] = fw * sx, cx  # output x in [-1, 1] -> input x in the box (mirrored if sx < 0)
    theta[:, 1, 1], theta[:, 1, 2] = fh, cy
    theta = theta.to(images.device, images.dtype)
    grid = F.affine_grid(theta, [b, images.shape[1], size, size], align_corners=False)  # (B, size, size, 2)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


class MultiCrop:
    """DINO's multi-crop views of a batch of images ``(B, C, H, W)``: 2 global + ``n_local`` local.

    Global crops cover 40-100% of the image and are resized to ``global_size``; local crops cover
    10-40% and are resized to ``local_size``. Both get random horizontal flips. With
    ``batched=True`` each view is made for the whole batch at once by :func:`random_resized_crop`
    (much faster for many small images, and seeded by ``generator``); the default uses
    torchvision's ``RandomResizedCrop`` image by image.
    """

    def __init__(
        self,
        global_size: int,
        local_size: int,
        n_local: int = 4,
        global_scale: tuple[float, float] = (0.4, 1.0),
        local_scale: tuple[float, float] = (0.1, 0.4),
        flip: bool = True,
        batched: bool = False,
        generator: torch.Generator | None = None,
    ) -> None:
        from torchvision.transforms import v2

        def crop(size: int, scale: tuple[float, float]) -> v2.Compose:
            ops = [v2.RandomResizedCrop(size, scale=scale, antialias=True)]
            return v2.Compose(ops + ([v2.RandomHorizontalFlip()] if flip else []))

        self.global_t = crop(global_size, global_scale)
        self.local_t = crop(local_size, local_scale)
        self.n_local = n_local
        self.global_size, self.local_size = global_size, local_size
        self.global_scale, self.local_scale = global_scale, local_scale
        self.flip, self.batched, self.generator = flip, batched, generator

    def __call__(self, images: torch.Tensor) -> list[torch.Tensor]:
        """One crop per image per view (each image draws its own crop)."""
        if self.batched:

            def view(size: int, scale: tuple[float, float]) -> torch.Tensor:
                return random_resized_crop(images, size, scale, flip=self.flip, generator=self.generator)

            return [view(self.global_size, self.global_scale) for _ in range(2)] + [
                view(self.local_size, self.local_scale) for _ in range(self.n_local)
            ]

        def per_image(t, x):  # noqa: ANN001, ANN202
            return torch.stack([t(img) for img in x])

        views = [per_image(self.global_t, images) for _ in range(2)]
        return views + [per_image(self.local_t, images) for _ in range(self.n_local)]
