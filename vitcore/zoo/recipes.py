"""The zoo's recipes: the live ones a chapter trains on first use (``RECIPES``), the ``--full`` ones
behind the shipped checkpoints (``FULL_RECIPES``; those on composed scenes are built in
``scene_recipes``), and ``recipe``, which returns either by name.

A recipe is a plain dict (architecture, data, optimisation, seed) whose JSON names its cache entry
and is recorded with each shipped checkpoint: a builder must return the same dict on every call.
"""

from __future__ import annotations

from collections.abc import Callable

from ..device import on_gpu
from .scene_recipes import SWEEP_PATCHES, VQA_BLOCKS, full_clip, full_grounding, full_patch_sweep, full_vqa

# The chapter-5 ViT: 4x4 grid of 7x7 patches (16 tokens + CLS), 4 blocks of width 64.
_VIT_CONFIG = dict(
    img_size=28, patch_size=7, in_chans=1, num_classes=10, embed_dim=64, depth=4, num_heads=4, mlp_ratio=2.0
)
_VIT = dict(arch="vit", **_VIT_CONFIG)
# The optimisation every Fashion-MNIST classifier shares; a recipe adds its number of epochs.
_TRAIN = dict(lr=2e-3, weight_decay=0.05, warmup=0.1, min_lr=1e-5, label_smoothing=0.1, clip_grad=1.0)


def _fmnist(model: dict, gpu: bool, cpu_batch: int, cpu_epochs: int) -> dict:
    """A live Fashion-MNIST classifier: on a GPU batch 256, 30 epochs and augmentation."""
    return dict(
        model=model,
        data=dict(dataset="fashion_mnist", n_train=None, batch_size=256 if gpu else cpu_batch, augment=gpu),
        train=dict(_TRAIN, epochs=30 if gpu else cpu_epochs),
        seed=0,
    )


def _fmnist_vit(gpu: bool) -> dict:
    # CPU: 2 epochs at batch 64 reached 85.6% test accuracy in our runs (batch 128: 84.4%): more steps help
    return _fmnist(dict(_VIT), gpu, cpu_batch=64, cpu_epochs=2)


def _fmnist_cnn(gpu: bool) -> dict:
    # width 21: 133k parameters, the closest ResNet to the ViT's 139k (resnet_for_params); a stride-2
    # stem keeps its cost near the ViT's (chapter 5 measures 1.81x the ViT's MACs per image)
    model = dict(arch="resnet", width=21, depths=[1, 1, 1], in_chans=1, num_classes=10, stem_stride=2)
    return _fmnist(model, gpu, cpu_batch=128, cpu_epochs=1)


def _fmnist_deit(gpu: bool) -> dict:
    # The chapter-5 ViT with a distillation token, taught by the CNN (chapter 6).
    rec = _fmnist_vit(gpu)
    rec["model"]["arch"] = "deit"
    rec["teacher"] = "fmnist_cnn"
    return rec


RECIPES: dict[str, Callable[[bool], dict]] = {
    "fmnist_vit": _fmnist_vit,
    "fmnist_cnn": _fmnist_cnn,
    "fmnist_deit": _fmnist_deit,
}


# ----------------------------------------------------------------------------- full recipes
# Trained as long as the method needs (CPU: about an hour each), shipped in vitcore/checkpoints/.
_FULL_TRAIN = dict(_TRAIN, warmup=0.05)


def _full_fmnist(live: Callable[[bool], dict], epochs: int, **data) -> dict:
    """A live CPU recipe trained longer (``epochs``), at batch 128 with crops and flips; ``data``
    overrides more of its data entries."""
    rec = live(False)
    rec["data"].update(batch_size=128, augment=True, **data)
    rec["train"] = dict(_FULL_TRAIN, epochs=epochs)
    return rec


def _full_fmnist_cnn() -> dict:
    # The chapter-5 CNN, trained for 30 epochs with crops and flips: the chapter-6 teacher.
    return _full_fmnist(_fmnist_cnn, epochs=30)


def _full_fmnist_vit() -> dict:
    # Chapter 5's long run: a ViT with finer patches (4x4: 49 tokens + CLS) and 6 blocks, 25 epochs
    # with crops and flips. (The chapter-5 live ViT, 16 tokens and 4 blocks, was at 86% after 17 of
    # 50 epochs of this schedule, too slow a climb to reach 92%.)
    rec = _full_fmnist(_fmnist_vit, epochs=25)
    rec["model"].update(patch_size=4, depth=6)
    return rec


def _full_fmnist_vit_w128() -> dict:
    # Chapter 5's GPU run: the 4x4-patch ViT twice as wide (width 128), 60 epochs at batch 256 with
    # crops and flips; trained on one H100 in about 5 minutes (the CPU would need many hours).
    rec = _full_fmnist_vit()
    rec["model"].update(embed_dim=128)
    rec["data"].update(batch_size=256)
    rec["train"] = dict(_FULL_TRAIN, epochs=60)
    return rec


def _full_deit_pair(distill: bool, seed: int) -> Callable[[], dict]:
    # Chapter 6's controlled comparison of data efficiency: the chapter-5 ViT trained on 10,000
    # images for 40 epochs, once plainly and once as a DeiT student of the shipped fmnist_cnn
    # teacher; same images, steps, augmentation and seed.
    def make() -> dict:
        rec = _full_fmnist(_fmnist_vit, epochs=40, n_train=10000)
        rec["seed"] = seed
        if distill:
            rec["model"]["arch"] = "deit"
            rec["teacher_shipped"] = "fmnist_cnn"
        return rec

    return make


# Chapter 5's data-size sweep: the chapter's ViT and its parameter-matched CNN on 1,000, 6,000 and
# 60,000 training images, 3 seeds each, every run about the same number of steps of 128 augmented
# images (two passes over 60,000; 936-940 steps), so a larger training set means fewer repeats of
# each image, never more compute.
SWEEP_SIZES = (1000, 6000, 60000)
SWEEP_STEPS = 938


def _full_sweep(arch: str, n_train: int, seed: int) -> Callable[[], dict]:
    def make() -> dict:
        steps_per_epoch = -(-n_train // 128)
        live = _fmnist_vit if arch == "vit" else _fmnist_cnn
        rec = _full_fmnist(live, round(SWEEP_STEPS / steps_per_epoch), n_train=n_train, eval_every_epoch=False)
        rec["seed"] = seed
        return rec

    return make


DINO_EPOCHS = 25


# Chapter 11's DINO run: the chapter's backbone (7x7 patches, width 64, 4 blocks, mean-pooled),
# 2 global 28x28 and 4 local 14x14 crops with grey-scale jitter, batch 256, all 60,000 images.
def _full_dino() -> dict:
    # the teacher's momentum (start) and temperature, the local crops, the grey-scale jitter
    dino = dict(m0=0.996, teacher_temp=0.04, n_local=4, local_size=14, jitter=0.4)
    return dict(
        method="dino",
        model=dict(_VIT, num_classes=0, dynamic_img_size=True, global_pool="avg"),
        head=dict(out_dim=1024, hidden_dim=256, bottleneck_dim=64),
        data=dict(dataset="fashion_mnist", n_train=None, batch_size=256),
        train=dict(epochs=DINO_EPOCHS, lr=1e-3, min_lr=1e-5, warmup=0.1, weight_decay=0.04, clip_grad=3.0, **dino),
        seed=0,
    )


# Chapter 10's MAE run: the chapter's encoder (4x4 patches, width 64, 4 blocks) and decoder (1 block of
# width 48), 75% masking, batch 256, all 60,000 images.
def _full_mae() -> dict:
    encoder = dict(_VIT_CONFIG, patch_size=4, num_classes=0, pos_embed="sincos2d", global_pool="avg")
    return dict(
        method="mae",
        model=dict(arch="mae", encoder=encoder, decoder=dict(decoder_dim=48, decoder_depth=1, decoder_heads=4)),
        data=dict(dataset="fashion_mnist", n_train=None, batch_size=256),
        train=dict(epochs=20, lr=2e-3, min_lr=0.0, warmup=0.1, weight_decay=0.05, mask_ratio=0.75),
        seed=0,
    )


# Chapters 10 and 11 on harder data: one garment per 32x32 scene at a random position, size and
# colour on a black, grey or noise background (vitcore.scenes.item_scenes), where raw pixels and a
# random network are weak. 40,000 unlabelled training scenes; RGB 4x4 patches (64 tokens + CLS),
# width 64, 4 blocks, mean-pooled, as the Fashion-MNIST runs.
_SCENE_DATA = dict(dataset="item_scenes", n_train=40_000, seed=0)
_SCENE_VIT = dict(
    _VIT_CONFIG, img_size=32, patch_size=4, in_chans=3, num_classes=0, dynamic_img_size=True, global_pool="avg"
)


def _full_dino_scenes() -> dict:
    # DINO's multi-crop (2 global 32x32, 4 local 16x16) with its colour jitter in a cheap form:
    # brightness/contrast, colour channels in a random order, grey with p = 0.2. The crops are
    # larger than the paper's (global 50-100%, local 25-50% of the scene instead of 40-100% and
    # 10-40%): with the paper's, most local crops of a scene show only background, and a student
    # asked to predict the whole scene from background learns the background (a first run with
    # them stayed near its initial weights, k-NN 0.21 after 4 of 10 epochs, pixels 0.34).
    dino: dict[str, object] = dict(m0=0.996, teacher_temp=0.04, n_local=4, local_size=16, jitter=0.4, colour=True)
    dino.update(global_scale=[0.5, 1.0], local_scale=[0.25, 0.5])  # lists: as the manifest's JSON has them
    return dict(
        method="dino",
        model=dict(arch="vit", **_SCENE_VIT),
        head=dict(out_dim=1024, hidden_dim=256, bottleneck_dim=64),
        data=dict(_SCENE_DATA, batch_size=128),
        train=dict(epochs=10, lr=1e-3, min_lr=1e-5, warmup=0.1, weight_decay=0.04, clip_grad=3.0, **dino),
        seed=0,
    )


def _full_mae_scenes() -> dict:
    # MAE with the paper's per-patch normalised pixel targets and a two-block decoder of width 64.
    encoder = dict(_SCENE_VIT, pos_embed="sincos2d")
    encoder.pop("dynamic_img_size")
    decoder = dict(decoder_dim=64, decoder_depth=2, decoder_heads=4, norm_pix_loss=True)
    return dict(
        method="mae",
        model=dict(arch="mae", encoder=encoder, decoder=decoder),
        data=dict(_SCENE_DATA, batch_size=256),
        train=dict(epochs=20, lr=2e-3, min_lr=0.0, warmup=0.1, weight_decay=0.05, mask_ratio=0.75),
        seed=0,
    )


FULL_RECIPES: dict[str, Callable[[], dict]] = {
    "fmnist_cnn": _full_fmnist_cnn,
    "fmnist_vit": _full_fmnist_vit,
    "fmnist_vit_w128_e60": _full_fmnist_vit_w128,
    **{f"deit_student_s{s}": _full_deit_pair(True, s) for s in range(3)},
    **{f"deit_baseline_s{s}": _full_deit_pair(False, s) for s in range(3)},
    **{f"sweep_{a}_n{n}_s{s}": _full_sweep(a, n, s) for a in ("vit", "cnn") for n in SWEEP_SIZES for s in range(3)},
    "dino_fmnist": _full_dino,
    "mae_fmnist": _full_mae,
    "dino_scenes": _full_dino_scenes,
    "mae_scenes": _full_mae_scenes,
    "grounding_vlm": full_grounding,
    **{f"vqa_block{b}": full_vqa(b) for b in VQA_BLOCKS},
    "vqa_block11_cls": full_vqa(11, use_prefix_tokens=True),
    "vqa_block11_shuffled": full_vqa(11, token_order_seed=0),
    "vqa_block7_11": full_vqa([7, 11]),
    "clip_scenes": full_clip,
    **{f"grounding_patch{p}": full_patch_sweep(p) for p in SWEEP_PATCHES},
}


def recipe(name: str, gpu: bool | None = None, full: bool = False) -> dict:
    """The recipe dict of a named model: the ``full`` one, or the live one (the GPU variant if
    ``gpu``; default: on a GPU now)."""
    if full:
        if name not in FULL_RECIPES:
            raise ValueError(f"no full recipe for {name!r}; full recipes: {sorted(FULL_RECIPES)}")
        return FULL_RECIPES[name]()
    if name not in RECIPES:
        raise ValueError(f"unknown zoo model {name!r}; choose from {sorted(RECIPES)}")
    return RECIPES[name](on_gpu() if gpu is None else gpu)
