import pytest
import torch

from vitcore.tolerance import assert_close
from vitcore.vit import VisionTransformer, ViTConfig
from vitcore.viz import (
    attention_maps,
    attention_rollout,
    cls_attention,
    mean_attention_distance,
    patch_distances,
    pca_colours,
    upsample_map,
)


def tiny_vit():
    return VisionTransformer(
        ViTConfig(img_size=16, patch_size=4, in_chans=1, num_classes=3, embed_dim=16, depth=3, num_heads=2)
    )


def test_attention_maps_shapes_and_rows_sum_to_one():
    maps = attention_maps(tiny_vit(), torch.randn(2, 1, 16, 16))
    assert len(maps) == 3 and maps[0].shape == (2, 2, 17, 17)
    for m in maps:
        assert_close(m.sum(-1), torch.ones(2, 2, 17), reduction=17)  # softmax rows over 17 tokens
    cls = cls_attention(maps[-1], (4, 4))
    assert cls.shape == (2, 2, 4, 4)
    assert_close(cls.flatten(-2).sum(-1) + maps[-1][:, :, 0, 0], torch.ones(2, 2), reduction=17)
    with pytest.raises(ValueError, match="does not match"):
        cls_attention(maps[-1], (3, 3))


def test_rollout_of_identity_is_identity_and_rows_sum_to_one():
    eye = torch.eye(5).expand(2, 3, 5, 5)
    assert_close(attention_rollout([eye, eye, eye]), torch.eye(5).expand(2, 5, 5), reduction=5, depth=3)
    maps = attention_maps(tiny_vit(), torch.randn(2, 1, 16, 16))
    r = attention_rollout(maps)
    assert_close(r.sum(-1), torch.ones(2, 17), reduction=17, depth=3)  # three 17 x 17 products
    # Without the residual term, rollout is the plain product of head-averaged maps.
    a = [m.mean(1) for m in maps]
    assert_close(attention_rollout(maps, residual=False), a[2] @ a[1] @ a[0], reduction=17, depth=3)


def test_attention_distance_on_constructed_maps():
    grid, p = (3, 3), 10
    d = patch_distances(grid, p)
    assert d[0, 1] == 10  # sqrt(100): exact
    assert_close(d[0, 4], torch.tensor(10 * 2**0.5))
    n = 9
    attn = torch.zeros(1, 2, n + 1, n + 1)
    attn[0, 0, :, 1:] = torch.eye(n + 1)[:, 1:] + 0  # head 0: each patch attends to itself
    attn[0, 0, 0, 1] = 1
    attn[0, 1, :, 1:] = 1.0 / n  # head 1: uniform over patches
    dist = mean_attention_distance(attn, grid, p)
    assert dist[0] == 0  # weight 1 on a distance of exactly 0
    assert_close(dist[1], d.mean(), reduction=n * n)  # both average the 81 patch distances


def test_upsample_and_pca_colours():
    heat = torch.arange(4.0).reshape(1, 2, 2)
    up = upsample_map(heat, (8, 8))
    assert up.shape == (1, 8, 8) and up.min() == 0 and up.max() == 1
    feats = torch.randn(2, 10, 6)
    cols = pca_colours(feats)
    assert cols.shape == (2, 10, 3) and cols.min() >= 0 and cols.max() <= 1
    # The first component separates two clusters.
    two = torch.cat([torch.randn(5, 6) * 0.01 + 3, torch.randn(5, 6) * 0.01 - 3])
    c = pca_colours(two)[:, 0]
    assert (c[:5] > 0.9).all() and (c[5:] < 0.1).all() or (c[:5] < 0.1).all() and (c[5:] > 0.9).all()


# --- the architecture diagrams ----------------------------------------------------------------

matplotlib = pytest.importorskip("matplotlib")


def _texts(fig) -> list[str]:
    from matplotlib.text import Text

    return [t.get_text() for t in fig.findobj(Text) if t.get_text()]


def _renders(fig) -> None:
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=40)  # drawing runs every artist: bad mathtext fails here
    assert buf.getvalue()[:8] == b"\x89PNG\r\n\x1a\n"


def test_encoder_block_diagram_shows_both_wirings():
    from matplotlib.figure import Figure

    from vitcore.viz import draw_encoder_block

    fig = draw_encoder_block()
    assert isinstance(fig, Figure)
    texts = _texts(fig)
    assert any(t.startswith("pre-norm") for t in texts) and any(t.startswith("post-norm") for t in texts)
    # each panel: two LayerNorms, one attention, one MLP
    assert texts.count("LayerNorm") == 4
    assert texts.count("Multi-head attention") == 2
    assert sum(t.startswith("MLP") for t in texts) == 2
    assert texts.count("residual") == 4
    _renders(fig)


def test_deit_diagram_has_both_tokens_and_heads():
    from vitcore.viz import draw_deit_tokens

    fig = draw_deit_tokens(n_patches=196)
    texts = _texts(fig)
    assert texts.count("CLS") == 2 and texts.count("DIST") == 2  # input and output rows
    assert "head" in texts and "head_dist" in texts
    assert any("196 + 2" in t for t in texts) and "$p_{196}$" in texts
    assert any("teacher" in t for t in texts)
    _renders(fig)


def test_mae_diagram_masks_the_stated_share():
    from vitcore.viz import draw_mae

    fig = draw_mae(grid=4, mask_ratio=0.75)
    texts = _texts(fig)
    assert texts.count("M") == 12  # a mask token at each of the 12 hidden positions
    assert any(t.startswith("encoder") for t in texts) and any(t.startswith("decoder") for t in texts)
    assert any("masked patches only" in t for t in texts)
    assert _texts(draw_mae(grid=6, mask_ratio=0.5)).count("M") == 18
    _renders(fig)


def test_dino_diagram_names_every_mechanism():
    from vitcore.viz import draw_dino

    fig = draw_dino()
    joined = " ".join(_texts(fig))
    for part in ("student", "teacher", "EMA", "centering", "sharpening", "stop-gradient", "local crops"):
        assert part in joined, part
    _renders(fig)


def test_lora_diagram_counts_parameters():
    from vitcore.viz import draw_lora

    fig = draw_lora(d_in=384, d_out=1152, r=8)
    joined = " ".join(_texts(fig))
    assert "12,288" in joined and "442,368" in joined  # 8 * (384 + 1152) and 384 * 1152
    assert "r = 8" in joined
    assert "r = 4" in " ".join(_texts(draw_lora(r=4)))
    _renders(fig)


def test_vlm_diagram_masks_the_answer_only():
    from vitcore.viz import draw_vlm_sequence

    fig = draw_vlm_sequence(n_image=16, question="which item is on the left ?", answer="ankle boot")
    texts = _texts(fig)
    assert texts.count("1") == 3  # the loss mask: "ankle", "boot" and <eos> are scored
    assert texts.count("0") == 7  # the 7 question tokens are targets too, but masked: context
    assert "<bos>" in texts and "<eos>" in texts and "$v_{15}$" in texts
    assert any(t.startswith("connector") for t in texts)
    _renders(fig)


def test_swin_diagram_has_pyramid_windows_and_merging():
    from vitcore.viz import draw_swin

    fig = draw_swin()
    texts = _texts(fig)
    assert sum(t.startswith("stage ") for t in texts) == 4
    assert texts.count("patch\nmerging") == 3
    joined = " ".join(texts)
    assert "shifted by 2" in joined and "windows of 4 × 4" in joined
    _renders(fig)


def test_diagrams_show_themselves_as_png_without_pyplot():
    # A notebook displays a cell's value through _repr_png_ when no pyplot figure has set up the
    # inline backend yet: the diagram must still appear as an image, not as "<Figure ...>".
    from vitcore.viz import draw_deit_tokens

    fig = draw_deit_tokens(n_patches=4)
    assert hasattr(fig, "_repr_png_")  # a Figure subclass defined lazily in vitcore.viz
    png = fig._repr_png_()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 1000
