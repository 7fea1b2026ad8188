"""Composed scenes: real objects pasted onto a canvas or a photo, with exact boxes and masks.

Several chapters need images whose contents are known exactly: CLIP (chapter 9) needs captions
such as "a red sandal left of a blue bag", visual grounding (chapter 13) needs tight boxes and
distractors of the same kind, segmentation (chapter 15) needs per-pixel masks. A
:class:`SceneComposer` pastes

- Fashion-MNIST items (their mask is where the pixels are bright; they are tinted with a named
  colour, keeping the item's own shading), and optionally
- Tux Paint stamps (RGBA pictures, each with an English caption in the ``.txt`` file beside it;
  from the Debian package in ``/usr/share/tuxpaint/stamps``, or downloaded once by
  :func:`vitcore.assets.download_stamps`, see :func:`vitcore.assets.find_stamps`), in their own
  colours,

onto a plain canvas, noise, or random crops of real textures and photos from ``skimage.data``.
Every pasted pixel is recorded in an instance mask, so boxes are the tight boxes of the *visible*
pixels of each object (after any occlusion) and masks and boxes always agree.

Coordinates: ``box = (x1, y1, x2, y2)`` in pixels, ``x1, y1`` the first column/row that holds
the object and ``x2, y2`` one past the last, so the object's pixels are ``mask[y1:y2, x1:x2]``.

The parts: ``vitcore.scenes.sources`` (stamps, textures), ``vitcore.scenes.spec`` (what goes in
and comes out: object specs, the batch of scenes), ``vitcore.scenes.placement`` (where objects
go), ``vitcore.scenes.composer`` (the composer) and ``vitcore.scenes.language`` (captions,
referring expressions) and ``vitcore.scenes.items`` (one garment per scene, the harder data set of
chapters 10 and 11), all importable from ``vitcore.scenes``.
"""

from .composer import SceneComposer
from .items import ITEM_SCENES, SCENE_MEAN, SCENE_STD, compose_item_scenes, item_scenes, normalise_scenes
from .language import caption, object_phrase, referring_expression
from .sources import STAMP_DIR, TEXTURES, Stamp, load_stamps, load_texture
from .spec import COLOURS, FASHION_NAMES, ObjectSpec, Scenes

__all__ = [
    "COLOURS",
    "FASHION_NAMES",
    "TEXTURES",
    "STAMP_DIR",
    "Stamp",
    "load_stamps",
    "load_texture",
    "ObjectSpec",
    "Scenes",
    "SceneComposer",
    "object_phrase",
    "caption",
    "referring_expression",
    "ITEM_SCENES",
    "SCENE_MEAN",
    "SCENE_STD",
    "compose_item_scenes",
    "item_scenes",
    "normalise_scenes",
]
