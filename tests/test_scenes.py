import numpy as np
import pytest
import torch

from vitcore.assets import find_stamps
from vitcore.scenes import COLOURS, ObjectSpec, SceneComposer, caption, load_stamps, object_phrase, referring_expression
from vitcore.tolerance import assert_close, is_close

Items = tuple[torch.Tensor, torch.Tensor]  # (Fashion-MNIST images, labels)


@pytest.fixture(scope="module")
def items(fmnist_test) -> Items:
    x, y = fmnist_test
    return x[:2000], y[:2000]


@pytest.fixture(scope="module")
def stamps():
    if find_stamps() is None:  # the Debian package or vitcore.assets' download
        pytest.skip("Tux Paint stamps are not installed (python -m vitcore.assets fetch)")
    return load_stamps(["animals"], size=24, limit=12)


def _check_boxes_and_masks(s):
    b = len(s)
    for i in range(b):
        n = int(s.num_objects[i])
        assert (s.boxes[i, n:] == -1).all() and (s.labels[i, n:] == -1).all()
        assert set(s.instance_masks[i].unique().tolist()) <= set(range(n + 1))
        for k in range(n):
            m = s.instance_masks[i] == k + 1
            assert m.any()
            x1, y1, x2, y2 = s.boxes[i, k].tolist()
            ys, xs = torch.nonzero(m, as_tuple=True)
            # tight: the box is exactly the extent of the object's visible pixels
            assert (x1, y1, x2, y2) == (xs.min().item(), ys.min().item(), xs.max().item() + 1, ys.max().item() + 1)
            assert (s.semantic_masks[i][m] == s.labels[i, k] + 1).all()
        assert ((s.semantic_masks[i] == 0) == (s.instance_masks[i] == 0)).all()


def test_boxes_are_tight_and_masks_agree(items: Items):
    comp = SceneComposer(*items, canvas_size=48, object_size=(14, 22), background=["black", "brick", "noise"])
    s = comp.sample(40, num_objects=(0, 3), seed=3)
    assert s.images.shape == (40, 3, 48, 48) and s.images.dtype == torch.float32
    assert 0 <= s.images.min() and s.images.max() <= 1
    _check_boxes_and_masks(s)
    # without overlap the boxes are disjoint
    for i in range(len(s)):
        bx = s.boxes[i, : int(s.num_objects[i])]
        for a in range(len(bx)):
            for c in range(a + 1, len(bx)):
                p, q = bx[a], bx[c]
                assert not (p[0] < q[2] and q[0] < p[2] and p[1] < q[3] and q[1] < p[3])


def test_pixels_are_tinted_with_the_named_colour(items: Items):
    comp = SceneComposer(*items, canvas_size=32, object_size=(20, 24), colours=("red", "blue"))
    s = comp.compose([[ObjectSpec(label=8, colour=0)], [ObjectSpec(label=8, colour=1)]], seed=0)
    for i, name in enumerate(("red", "blue")):
        m = s.instance_masks[i] == 1
        rgb = s.images[i][:, m]  # (3, P)
        tint = torch.tensor(COLOURS[name])[:, None]
        ratio = rgb / tint  # every object pixel is a shade of the tint
        assert_close(ratio, ratio[:1].expand_as(ratio), reduction=2)  # (shade * tint) / tint: two roundings
        assert (s.images[i][:, ~m] == 0).all()  # black canvas elsewhere
    assert s.labels.tolist() == [[8], [8]] and s.colours.tolist() == [[0], [1]]


def test_overlap_keeps_boxes_of_visible_pixels(items: Items, stamps):
    comp = SceneComposer(
        *items, stamps=stamps, canvas_size=32, object_size=(16, 24), allow_overlap=True, background="gravel"
    )
    s = comp.sample(30, num_objects=4, seed=1)
    _check_boxes_and_masks(s)
    assert (s.labels >= 10).any() and (s.colours[s.labels >= 10] == -1).all()  # stamps keep their colours
    assert s.class_names[10] == stamps[0].name


def test_determinism(items: Items):
    comp = SceneComposer(*items, canvas_size=40, object_size=(12, 20), background=["grass", "coffee"])
    a, b, c = comp.sample(10, seed=5), comp.sample(10, seed=5), comp.sample(10, seed=6)
    assert torch.equal(a.images, b.images) and torch.equal(a.boxes, b.boxes) and a.backgrounds == b.backgrounds
    assert not is_close(a.images, c.images)


def test_combos_and_distinct(items: Items):
    comp = SceneComposer(*items, canvas_size=48, object_size=(12, 16))
    combos = [(0, 1), (5, 2), (8, 0)]
    s = comp.sample(50, num_objects=(2, 3), seed=0, combos=combos)
    for i in range(len(s)):
        pairs = [(int(s.labels[i, k]), int(s.colours[i, k])) for k in range(int(s.num_objects[i]))]
        assert set(pairs) <= set(combos) and len(set(pairs)) == len(pairs)


def test_fixed_positions_and_language(items: Items):
    comp = SceneComposer(*items, canvas_size=(32, 64), object_size=(16, 24), colours=("red", "blue"))
    s = comp.compose(
        [[ObjectSpec(label=5, colour=0, size=24, xy=(36, 4)), ObjectSpec(label=8, colour=1, size=24, xy=(2, 4))]]
    )
    assert s.boxes[0, 0, 0] == 36 and s.boxes[0, 1, 0] == 2  # the sprite is cropped tight, so xy is the box corner
    assert caption(s, 0) == "a blue bag left of a red sandal"
    assert caption(s, 0, np.random.default_rng(1)) in (
        "a blue bag left of a red sandal",
        "a red sandal right of a blue bag",
    )
    assert object_phrase(s, 0, 0, article="the") == "the red sandal"
    assert referring_expression(s, 0, 0) == "the sandal"
    # two bags: colour or side disambiguates
    s = comp.compose(
        [
            [ObjectSpec(label=8, colour=0, size=20, xy=(40, 2)), ObjectSpec(label=8, colour=1, size=20, xy=(2, 2))],
            [ObjectSpec(label=8, colour=0, size=20, xy=(40, 2)), ObjectSpec(label=8, colour=0, size=20, xy=(2, 2))],
        ]
    )
    assert referring_expression(s, 0, 0) == "the red bag"
    assert (
        referring_expression(s, 1, 0) == "the bag on the right"
        and referring_expression(s, 1, 1) == "the bag on the left"
    )
    with pytest.raises(ValueError, match="no object 5"):
        referring_expression(s, 0, 5)


def test_clear_errors(items: Items):
    with pytest.raises(ValueError, match="do not fit"):
        SceneComposer(*items, canvas_size=24, object_size=(10, 30))
    with pytest.raises(ValueError, match="unknown colours"):
        SceneComposer(*items, colours=("red", "mauve"))
    with pytest.raises(ValueError, match="unknown background"):
        SceneComposer(*items, background="moon")
    comp = SceneComposer(*items, canvas_size=32, object_size=(24, 28), max_tries=5)
    with pytest.raises(ValueError, match="could not place 3 objects"):
        comp.sample(2, num_objects=3)
    with pytest.raises(ValueError, match="outside"):
        comp.compose([[ObjectSpec(label=0, size=24, xy=(30, 30))]])
    with pytest.raises(ValueError, match="overlap"):
        comp.compose([[ObjectSpec(label=8, size=24, xy=(0, 0)), ObjectSpec(label=8, size=24, xy=(4, 4))]])
    with pytest.raises(ValueError, match="distinct"):
        comp.sample(2, num_objects=3, combos=[(0, 0), (1, 1)])
    with pytest.raises(ValueError, match="no stamp category"):
        load_stamps(["dragons"])
