import pytest
import torch

from vitcore.boxes import (
    BoxParseError,
    accuracy_at_iou,
    box_iou,
    dequantize_box,
    format_box,
    generalized_box_iou,
    parse_box,
    quantize_box,
)
from vitcore.tolerance import assert_close, tolerance


def test_iou_on_known_boxes():
    a = torch.tensor([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 2, 2]])
    b = torch.tensor([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30], [1, 1, 3, 3]])
    assert_close(box_iou(a, b), torch.tensor([1.0, 50 / 150, 0.0, 1 / 7]))  # exact ratios of areas
    assert accuracy_at_iou(a, b, 0.5) == 0.25


def test_giou_penalises_distance_when_iou_is_zero():
    a = torch.tensor([0.0, 0, 1, 1])
    near, far = torch.tensor([2.0, 0, 3, 1]), torch.tensor([9.0, 0, 10, 1])
    assert box_iou(a, near) == box_iou(a, far) == 0
    g_near, g_far = generalized_box_iou(a, near), generalized_box_iou(a, far)
    assert_close(g_near, torch.tensor(-1 / 3))  # hull 3, union 2
    assert g_far < g_near < 0
    assert_close(generalized_box_iou(a, a), torch.tensor(1.0))


def test_box_text_round_trip():
    box = torch.tensor([12.0, 30.5, 100.0, 111.9])
    q = quantize_box(box, image_size=(112, 112))
    text = format_box(q)
    assert text == "<box>(107,272,893,999)</box>"
    back = dequantize_box(torch.tensor(parse_box(text)), (112, 112))
    # within half a grid step, plus the rounding of coordinates of size 112
    assert (back - box).abs().max() <= 112 / 1000 / 2 + tolerance(reduction=2).atol * 112


def test_parse_box_accepts_qwen_pair_form_and_surrounding_text():
    assert parse_box("The red bag is at <box>(10,20),(300,400)</box>.") == (10, 20, 300, 400)
    assert parse_box("<box>( 1, 2, 3, 4 )</box>") == (1, 2, 3, 4)


@pytest.mark.parametrize(
    "text, message",
    [
        ("no box here", "no <box>"),
        ("<box>(1,2,3)</box>", "no <box>"),
        ("<box>(1,2,3,4)</box><box>(5,6,7,8)</box>", "expected one box, found 2"),
        ("<box>(10,20,1001,30)</box>", "outside the 0..1000 grid"),
        ("<box>(50,20,40,30)</box>", "x2 <= x1"),
        ("<box>(1,2,3,4)", "no <box>"),
    ],
)
def test_parse_box_rejects_malformed(text, message):
    with pytest.raises(BoxParseError, match=message):
        parse_box(text)


def test_quantize_rounds_exact_ties_half_to_even_like_python():
    # 56-pixel image, 28 steps: every odd pixel coordinate lies exactly half way between two steps
    box = torch.tensor([1, 3, 5, 7])
    assert quantize_box(box, (56, 56), 28).tolist() == [round(v * 28 / 56) for v in box.tolist()] == [0, 2, 2, 4]
