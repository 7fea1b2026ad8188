import pytest
import torch

from vitcore.boxes import format_box, parse_box, quantize_box
from vitcore.grounding import (
    BoxRegressor,
    box_regression_loss,
    coordinate_smoothed_loss,
    encode_grounding,
    localisation_metrics,
    make_referring_dataset,
    word_ids,
)
from vitcore.scenes import SceneComposer
from vitcore.tolerance import assert_close
from vitcore.vit import VisionTransformer, ViTConfig
from vitcore.vlm import GroundingTokenizer


@pytest.fixture(scope="module")
def data(fmnist_test):
    x, y = fmnist_test
    comp = SceneComposer(
        x[:1000].numpy(),
        y[:1000].numpy(),
        canvas_size=48,
        object_size=(14, 20),
        colours=("red", "green", "blue"),
        background=["grass", "coffee"],
    )
    return make_referring_dataset(comp, 40, seed=3)


def test_boxes_enclose_the_target_and_instructions_name_it(data):
    assert data.images.shape == (40, 3, 48, 48) and data.boxes.shape == (40, 4)
    s = data.scenes
    same_kind = 0
    for i in range(len(data)):
        objs = s.objects(i)
        me = objs[int(data.target[i])]
        # the box is exactly the extent of the target's visible pixels in the instance mask
        ys, xs = torch.nonzero(s.instance_masks[i] == int(data.target[i]) + 1, as_tuple=True)
        assert tuple(data.boxes[i].tolist()) == (
            xs.min().item(),
            ys.min().item(),
            xs.max().item() + 1,
            ys.max().item() + 1,
        )
        assert torch.equal(data.images[i], s.images[i])
        text = data.instructions[i]
        assert text.startswith("find the") and me["name"] in text
        rivals = [o for j, o in enumerate(objs) if j != int(data.target[i]) and o["name"] == me["name"]]
        if rivals:
            same_kind += 1
            # a same-kind distractor forces a colour or a place into the instruction
            assert me["colour_name"] in text or any(w in text for w in ("left", "right", "top", "bottom"))
    assert same_kind >= 10  # distractors of the same kind are common


def test_encode_grounding_marks_the_box_answer(data):
    words = {w for t in data.instructions for w in GroundingTokenizer.split(t)}
    tok = GroundingTokenizer(words, grid=48)
    ids, mask = encode_grounding(tok, data.instructions[:3], data.boxes[:3], (48, 48))
    for i in range(3):
        answer = tok.decode(ids[i][mask[i].bool()].tolist())
        assert parse_box(answer, grid=48) == tuple(data.boxes[i].tolist())  # grid 48 on 48 px: exact
        prompt = tok.decode(ids[i][~mask[i].bool()].tolist())
        assert prompt == data.instructions[i]
    with pytest.raises(ValueError, match="instructions but"):
        encode_grounding(tok, data.instructions[:3], data.boxes[:2], (48, 48))


def test_regressor_outputs_boxes_and_loss_is_zero_only_on_target():
    vit = VisionTransformer(ViTConfig(img_size=16, patch_size=4, num_classes=0, embed_dim=16, depth=1, num_heads=2))
    reg = BoxRegressor(vit, vocab_size=10)
    out = reg(torch.rand(3, 3, 16, 16), torch.tensor([[1, 2, 0], [3, 0, 0], [4, 5, 6]]))
    assert out.shape == (3, 4) and (out[:, 2:] >= out[:, :2]).all() and out.min() >= 0 and out.max() <= 16
    with pytest.raises(ValueError, match="word ids"):
        reg(torch.rand(1, 3, 16, 16))
    t = torch.tensor([[2.0, 2, 10, 12]])
    assert_close(box_regression_loss(t, t, (16, 16)), torch.tensor(0.0), reduction=4)  # L1 0, GIoU 1
    assert box_regression_loss(t + 3, t, (16, 16)).item() > 0.1


def test_localisation_metrics_count_failures_as_misses():
    target = torch.tensor([[0, 0, 10, 10], [0, 0, 10, 10]])
    pred = torch.tensor([[0.0, 0, 10, 10], [0, 0, 0, 0]])
    m = localisation_metrics(pred, target, torch.tensor([False, True]))
    assert m["acc@0.5"] == 0.5 and m["mean_iou"] == 0.5 and m["parse_fail"] == 0.5 and m["corner_err_px"] == 0


def test_word_ids_pad_with_zero():
    tok = GroundingTokenizer(["find", "the", "bag"], grid=10)
    w = word_ids(tok, ["find the bag", "find bag"])
    assert w.shape == (2, 3) and w[1, 2] == tok.pad_id == 0
    assert format_box(quantize_box(torch.tensor([0, 0, 5, 5]), (10, 10), 10)) == "<box>(0,0,5,5)</box>"


def test_every_object_gives_one_example_per_nameable_object(fmnist_test):
    x, y = fmnist_test
    comp = SceneComposer(
        x[:1000].numpy(),
        y[:1000].numpy(),
        canvas_size=48,
        object_size=(14, 20),
        colours=("red", "green", "blue"),
        background=["grass", "coffee"],
    )
    d = make_referring_dataset(comp, 30, seed=5, every_object=True)
    assert len(d.scenes) == 30 and len(d) > 30  # several examples share a scene
    assert d.images.shape == (len(d), 3, 48, 48)
    for i in range(len(d)):
        s, k = int(d.scene_index[i]), int(d.target[i])
        ys, xs = torch.nonzero(d.scenes.instance_masks[s] == k + 1, as_tuple=True)
        assert tuple(d.boxes[i].tolist()) == (
            xs.min().item(),
            ys.min().item(),
            xs.max().item() + 1,
            ys.max().item() + 1,
        )
        assert d.scenes.objects(s)[k]["name"] in d.instructions[i]
    for s in range(len(d.scenes)):
        texts = [t for t, j in zip(d.instructions, d.scene_index.tolist()) if j == s]
        assert len(texts) == len(set(texts)) >= 1  # each names a different object
    assert torch.equal(d.batch_images(torch.tensor([0, len(d) - 1])), d.images[[0, len(d) - 1]])


def test_coordinate_smoothed_loss_is_ce_at_zero_and_prefers_near_misses():
    tok = GroundingTokenizer(["find", "the", "bag"], grid=20)
    torch.manual_seed(0)
    logits = torch.randn(2, 5, len(tok))
    target = torch.randint(0, len(tok), (2, 5))
    target[0, 0] = -100
    ce = torch.nn.functional.cross_entropy(logits.reshape(-1, len(tok)), target.reshape(-1), ignore_index=-100)
    size = target.numel() * len(tok)  # a mean over targets of log-sum-exps over the vocabulary
    assert_close(coordinate_smoothed_loss(logits, target, tok, 0.0), ce, reduction=size)
    c0 = tok.stoi["0"]
    t = torch.tensor([[c0 + 10]])

    def peaked(at: int) -> torch.Tensor:
        z = torch.zeros(1, 1, len(tok))
        z[0, 0, at] = 8.0
        return z

    near, far = (coordinate_smoothed_loss(peaked(c0 + k), t, tok, 1.0) for k in (11, 17))
    assert near < far
    # one-hot CE cannot tell the two apart
    assert_close(
        coordinate_smoothed_loss(peaked(c0 + 11), t, tok, 0.0),
        coordinate_smoothed_loss(peaked(c0 + 17), t, tok, 0.0),
        reduction=len(tok),
    )
    # non-coordinate targets keep one-hot targets
    w = torch.tensor([[tok.stoi["bag"]]])
    assert_close(
        coordinate_smoothed_loss(peaked(c0), w, tok, 1.0),
        coordinate_smoothed_loss(peaked(c0), w, tok, 0.0),
        reduction=len(tok),
    )
    with pytest.raises(ValueError):
        coordinate_smoothed_loss(logits, target, tok, -1.0)


def test_train_vlm_runs_exact_steps_and_lowers_the_loss(data):
    from vitcore.grounding import train_vlm
    from vitcore.vlm import TinyLM, VisionLanguageModel

    torch.manual_seed(0)
    words = {w for t in data.instructions for w in GroundingTokenizer.split(t)}
    tok = GroundingTokenizer(words, grid=12)
    vit = VisionTransformer(
        ViTConfig(img_size=48, patch_size=12, in_chans=3, num_classes=0, embed_dim=32, depth=2, num_heads=2)
    )
    vlm = VisionLanguageModel(vit, TinyLM(len(tok), dim=32, depth=1, num_heads=2, max_len=48), feature_layer=[0, 1])
    feats = vlm.vision_features(data.scenes.images).detach()  # one row per scene
    losses = train_vlm(vlm, tok, data, steps=60, batch_size=8, lr=3e-3, features=feats, coord_sigma=1.0, progress=False)
    assert len(losses) == 60  # 60 steps although one epoch holds only 5 batches
    assert sum(losses[-10:]) / 10 < 0.7 * sum(losses[:10]) / 10


def test_train_regressor_refuses_data_smaller_than_one_batch(data):
    from vitcore.grounding import train_regressor

    words = {w for t in data.instructions for w in GroundingTokenizer.split(t)}
    tok = GroundingTokenizer(words, grid=12)
    vit = VisionTransformer(
        ViTConfig(img_size=48, patch_size=12, in_chans=3, num_classes=0, embed_dim=16, depth=1, num_heads=2)
    )
    reg = BoxRegressor(vit, vocab_size=len(tok))
    w = word_ids(tok, data.instructions)
    with pytest.raises(ValueError, match=r"40 examples do not fill one batch of 64"):
        train_regressor(reg, data, w, epochs=2, batch_size=64, progress=False)
    losses = train_regressor(reg, data, w, epochs=2, batch_size=16, progress=False)
    assert len(losses) == 2 * (40 // 16)  # whole batches only: the partial batch of 8 is left out


def _scripted_vlm(tok: GroundingTokenizer, answer: list[int], start: int, vision_dim: int = 8):
    """A VisionLanguageModel whose greedy answer is fixed: the LM has no blocks and no token embedding,
    so the input at position p is the one-hot vector e_p (its position embedding); ``lm_head`` row
    ``answer[k]`` reads coordinate ``start + k``, so position ``start + k`` predicts ``answer[k]``."""
    from vitcore.vlm import TinyLM, VisionLanguageModel

    dim = 40
    lm = TinyLM(len(tok), dim=dim, depth=0, num_heads=1, max_len=dim)
    with torch.no_grad():
        lm.tok_embed.weight.zero_()
        lm.pos_embed.copy_(torch.eye(dim).unsqueeze(0))
        lm.lm_head.weight.zero_()
        for k, t in enumerate(answer):
            lm.lm_head.weight[t, start + k] = 1.0
    vit = VisionTransformer(
        ViTConfig(img_size=8, patch_size=4, in_chans=3, num_classes=0, embed_dim=vision_dim, depth=1, num_heads=2)
    )
    return VisionLanguageModel(vit, lm)


def test_ground_parses_a_forced_answer_into_pixel_boxes_and_flags_a_malformed_one():
    from vitcore.grounding import ground

    tok = GroundingTokenizer(["find", "the", "bag"], grid=16)
    answer = tok.encode("<box>(4,8,12,16)</box>", eos=True, answer=True)  # <box> ( 4 , 8 , 12 , 16 ) </box> <eos>
    assert len(answer) == 12  # ground generates at most 12 tokens
    n_img = 4  # a 2x2 patch grid (the CLS token is dropped)
    short, long = "find bag", "find the bag"  # <bos> + 2 and <bos> + 3 tokens
    # The short prompt ends at position n_img + 2: the answer starts there. The long prompt ends one
    # position later, so its answer is the same one shifted by one token: "(4,8,12,16)</box>", no <box>.
    vlm = _scripted_vlm(tok, answer, start=n_img + 2)
    feats = torch.randn(3, 1 + n_img, 8)  # precomputed vision tokens; the images only give the size
    images = torch.zeros(3, 3, 6, 10)  # H = 6, W = 10
    boxes, failed, texts = ground(vlm, tok, images, [short, long, short], features=feats)
    assert texts == ["<box>(4,8,12,16)</box>", "(4,8,12,16)</box>", "<box>(4,8,12,16)</box>"]
    assert failed.tolist() == [False, True, False]
    # grid 16 -> pixels: x * 10 / 16, y * 6 / 16
    expected = torch.tensor([[4 * 10 / 16, 8 * 6 / 16, 12 * 10 / 16, 16 * 6 / 16]])
    assert_close(boxes[[0, 2]], expected.expand(2, 4))
    assert torch.equal(boxes[1], torch.zeros(4))  # a failed parse leaves an all-zero box
    # the same with batches of one prompt (batch_size does not change the answers)
    boxes1, failed1, texts1 = ground(vlm, tok, images, [short, long, short], features=feats, batch_size=1)
    assert texts1 == texts and torch.equal(failed1, failed) and torch.equal(boxes1, boxes)


def test_train_regressor_lowers_the_loss_and_trains_only_the_head_on_features(data):
    from vitcore.grounding import train_regressor

    torch.manual_seed(0)
    vit = VisionTransformer(
        ViTConfig(img_size=48, patch_size=12, in_chans=3, num_classes=0, embed_dim=16, depth=1, num_heads=2)
    )
    reg = BoxRegressor(vit)  # no words: the box from the image features alone
    # "Frozen encoder" tokens whose CLS holds the target box (centre, size; one example per scene), so
    # that a head can learn to read it: training must then bring the loss far down.
    assert torch.equal(data.scene_index, torch.arange(len(data)))
    b = data.boxes.float() / 48
    box = torch.stack([(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2, b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]], -1)
    feats = torch.zeros(len(data), 1 + 16, 16)
    feats[:, 0, :4] = 4 * (box - 0.5)

    def full_loss() -> float:  # on all 40 examples, no sampling noise
        with torch.no_grad():
            return box_regression_loss(reg(data.images, None, feats), data.boxes, (48, 48)).item()

    before_loss = full_loss()
    before = {k: v.clone() for k, v in reg.vision.state_dict().items()}
    losses = train_regressor(reg, data, None, epochs=16, batch_size=8, lr=1e-2, progress=False, features=feats)
    assert len(losses) == 16 * 5
    assert full_loss() < 0.5 * before_loss
    assert all(torch.equal(v, reg.vision.state_dict()[k]) for k, v in before.items())  # frozen: untouched
    with pytest.raises(ValueError, match="word ids"):  # a regressor that reads instructions needs them
        train_regressor(BoxRegressor(vit, vocab_size=5), data, None, epochs=1, batch_size=8, progress=False)
