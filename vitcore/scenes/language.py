"""Scenes in words: object phrases, captions ("a red sandal left of a blue bag") and referring
expressions that pick out one object among distractors (chapters 9 and 13)."""

from __future__ import annotations

import numpy as np

from .spec import Scenes


def object_phrase(scenes: Scenes, i: int, k: int, article: str = "a", colour: bool = True) -> str:
    """``"a red sandal"`` for object ``k`` of scene ``i`` (stamps: ``"a frog"``)."""
    obj = scenes.objects(i)[k]
    words = ([obj["colour_name"]] if colour and obj["colour_name"] else []) + [obj["name"]]
    if article == "a" and words[0][0] in "aeiou":
        article = "an"
    return " ".join(([article] if article else []) + words)


def caption(scenes: Scenes, i: int, rng: np.random.Generator | None = None) -> str:
    """A caption listing the objects left to right.

    One object: ``"a red sandal"``; two: ``"a red sandal left of a blue bag"`` (with ``rng``, half
    the time the same scene as ``"a blue bag right of a red sandal"``); more: ``"a red sandal, a
    blue bag and a green coat"`` (left to right).
    """
    objs = scenes.objects(i)
    if not objs:
        return "nothing"
    order = sorted(range(len(objs)), key=lambda k: objs[k]["centre"][0])
    phrases = [object_phrase(scenes, i, k) for k in order]
    if len(phrases) == 1:
        return phrases[0]
    if len(phrases) == 2:
        if rng is not None and rng.random() < 0.5:
            return f"{phrases[1]} right of {phrases[0]}"
        return f"{phrases[0]} left of {phrases[1]}"
    return ", ".join(phrases[:-1]) + " and " + phrases[-1]


def referring_expression(scenes: Scenes, i: int, k: int) -> str | None:
    """The shortest phrase that picks out object ``k`` of scene ``i`` among the others.

    Tries ``"the bag"``, ``"the red bag"``, ``"the bag on the left"`` (or right/top/bottom,
    leftmost/rightmost among several), ``"the red bag on the left"``; ``None`` if nothing in
    this vocabulary is unambiguous.
    """
    objs = scenes.objects(i)
    if not 0 <= k < len(objs):
        raise ValueError(f"scene {i} has {len(objs)} objects, no object {k}")
    me = objs[k]

    def same(o: dict, use_colour: bool) -> bool:
        return o["name"] == me["name"] and (not use_colour or o["colour_name"] == me["colour_name"])

    for use_colour, use_place in ((False, False), (True, False), (False, True), (True, True)):
        if use_colour and me["colour_name"] is None:
            continue
        rivals = [o for j, o in enumerate(objs) if j != k and same(o, use_colour)]
        noun = object_phrase(scenes, i, k, article="the", colour=use_colour)
        if not rivals:
            return noun
        if not use_place:
            continue
        for axis, (low, high) in ((0, ("left", "right")), (1, ("top", "bottom"))):
            c = [o["centre"][axis] for o in rivals]
            two = len(rivals) == 1
            if me["centre"][axis] < min(c):
                return f"{noun} on the {low}" if two else f"the {low}most {noun[4:]}"
            if me["centre"][axis] > max(c):
                return f"{noun} on the {high}" if two else f"the {high}most {noun[4:]}"
    return None
