import torch

from vitcore.boxes import format_box, parse_box
from vitcore.tolerance import assert_close, is_close
from vitcore.vit import VisionTransformer, ViTConfig
from vitcore.vlm import GroundingTokenizer, TinyLM, VisionLanguageModel

WORDS = "find the red blue bag sandal on left right".split()


def tiny_vlm(**kw):
    vit = VisionTransformer(
        ViTConfig(img_size=16, patch_size=4, in_chans=1, num_classes=0, embed_dim=16, depth=2, num_heads=2)
    )
    tok = GroundingTokenizer(WORDS, grid=100)
    return VisionLanguageModel(vit, TinyLM(len(tok), dim=16, depth=1, num_heads=2, max_len=64), **kw), tok


def test_tokenizer_box_round_trip_with_one_token_per_coordinate():
    tok = GroundingTokenizer(WORDS)
    text = "find the red bag " + format_box((12, 30, 400, 1000))
    ids = tok.encode(text, bos=True, eos=True, answer=True)
    assert tok.itos[ids[5]] == "<box>" and tok.itos[ids[7]] == "12"
    assert len(ids) == 2 + 4 + 11  # bos/eos, 4 words, <box> ( x , y , x , y ) </box>
    assert tok.decode(ids) == text
    assert parse_box(tok.decode(ids)) == (12, 30, 400, 1000)
    assert tok.encode("find the zebra", lenient=True)[-1] == tok.unk_id  # strict by default: test_tokenizer.py


def test_image_tokens_and_frozen_vision():
    model, _ = tiny_vlm()
    img = model.image_tokens(torch.randn(2, 1, 16, 16))
    assert img.shape == (2, 16, 16)  # 16 patches, CLS dropped, LM width 16
    assert not any(p.requires_grad for p in model.vision.parameters())
    model2, _ = tiny_vlm(use_prefix_tokens=True, feature_layer=0)
    assert model2.image_tokens(torch.randn(1, 1, 16, 16)).shape == (1, 17, 16)


def test_several_feature_layers_are_concatenated_for_the_connector():
    model, _ = tiny_vlm(feature_layer=[0, 1])
    x = torch.randn(2, 1, 16, 16)
    feats = model.vision_features(x)
    first, last = model.vision.get_intermediate_layers(x, [0, 1], norm=True)
    assert feats.shape == (2, 17, 32) and torch.equal(feats, torch.cat([first, last], -1))
    assert model.connector.fc1.in_features == 32
    assert model.image_tokens(x).shape == (2, 16, 16)
    assert torch.equal(model.image_tokens(None, feats), model.image_tokens(x))


def test_loss_counts_answer_tokens_only_and_learns_a_fixed_answer():
    torch.manual_seed(0)
    model, tok = tiny_vlm()
    prompt = tok.encode("find the bag", bos=True)
    answer = tok.encode(format_box((10, 20, 30, 40)), eos=True, answer=True)
    ids = torch.tensor([prompt + answer] * 4)
    mask = torch.tensor([[0] * len(prompt) + [1] * len(answer)] * 4)
    images = torch.randn(4, 1, 16, 16)
    base = model.loss(images, ids, mask)
    # A different answer changes the loss; the prompt tokens are never targets.
    ids_alt = ids.clone()
    ids_alt[:, len(prompt) + 2] = tok.stoi["77"]
    assert not is_close(model.loss(images, ids_alt, mask), base, reduction=len(tok))
    no_answer = torch.zeros_like(mask)
    no_answer[:, -1] = 1  # only the final <eos> is a target
    logits = model.logits(images, ids[:, :-1])
    expected = torch.nn.functional.cross_entropy(logits[:, -1], ids[:, -1])
    assert_close(model.loss(images, ids, no_answer), expected, reduction=4 * len(tok))  # 4 targets, vocab-long sums
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    for _ in range(150):
        opt.zero_grad()
        loss = model.loss(images, ids, mask)
        loss.backward()
        opt.step()
    assert loss.item() < 0.05
    out = model.generate(images[:2], torch.tensor([prompt] * 2), max_new_tokens=15, eos_id=tok.eos_id)
    assert parse_box(tok.decode(out[0].tolist()), grid=100) == (10, 20, 30, 40)


def test_precomputed_vision_tokens_give_the_same_logits_and_attention():
    torch.manual_seed(0)
    model, tok = tiny_vlm()
    images = torch.randn(2, 1, 16, 16)
    ids = torch.tensor([tok.encode("find the bag", bos=True)] * 2)
    feats = model.vision_features(images)  # (2, 17, 16) with CLS
    assert feats.shape == (2, 17, 16)
    # vision (2 blocks) then LM (1 block), all 16 wide with MLPs of 64
    assert_close(model.logits(None, ids, vision_tokens=feats), model.logits(images, ids), reduction=64, depth=3)
    out_a = model.generate(images, ids, max_new_tokens=3)
    out_b = model.generate(None, ids, max_new_tokens=3, vision_tokens=feats)
    assert torch.equal(out_a, out_b)
    import pytest

    with pytest.raises(ValueError, match="images or precomputed"):
        model.image_tokens(None)
    x = torch.cat([model.image_tokens(images), model.lm.tok_embed(ids)], 1)
    logits, maps = model.lm(x, return_attention=True)
    assert_close(logits, model.lm(x), reduction=64)  # explicit vs fused attention, one block
    assert len(maps) == 1 and maps[0].shape == (2, 2, x.shape[1], x.shape[1])
    assert torch.all(maps[0].triu(1) == 0)  # causal: no attention to later tokens
    assert_close(maps[0].sum(-1), torch.ones(2, 2, x.shape[1]), reduction=x.shape[1])
