"""Visual grounding: referring expressions on composed scenes, ``<box>`` answers, a regression baseline.

- :func:`make_referring_dataset` composes scenes with :class:`vitcore.scenes.SceneComposer`
  (objects of the same kind as distractors) and keeps, per scene, one instruction such as
  ``"find the red bag"`` or ``"find the sandal on the left"`` with the target's exact box:
  training examples ``(image, instruction, box)``.
- :func:`encode_grounding` turns instructions and boxes into token ids for a
  :class:`vitcore.vlm.VisionLanguageModel` (prompt ``<bos> instruction``, answer
  ``<box>(x1,y1,x2,y2)</box> <eos>``, loss on the answer only) and :func:`ground` decodes greedily
  and parses the box (Pix2Seq: Chen et al., 2022; Qwen-VL: Bai et al., 2023).
- :class:`BoxRegressor` is the baseline: four numbers from the CLS token, trained with
  L1 + GIoU (:func:`box_regression_loss`; Rezatofighi et al., 2019; DETR's box loss).

The parts, all importable from ``vitcore.grounding``: ``.data`` (the examples), ``.text`` (token
ids, decoding, metrics), ``.baseline`` (the regressor) and ``.training``.
"""

from .baseline import BoxRegressor, box_regression_loss
from .data import ReferringData, make_referring_dataset
from .text import encode_grounding, ground, localisation_metrics, word_ids
from .training import coordinate_smoothed_loss, optimise_indexed, train_regressor, train_vlm

__all__ = [
    "ReferringData",
    "make_referring_dataset",
    "encode_grounding",
    "ground",
    "localisation_metrics",
    "BoxRegressor",
    "box_regression_loss",
    "word_ids",
    "optimise_indexed",
    "train_vlm",
    "train_regressor",
    "coordinate_smoothed_loss",
]
