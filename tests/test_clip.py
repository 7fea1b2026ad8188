import pytest
import torch
import torch.nn.functional as F

from vitcore.clip import CLIP, ClipTokenizer, LogitScale, TextTransformer, clip_loss, zero_shot_weights
from vitcore.tolerance import assert_close
from vitcore.vit import ViTConfig


def test_loss_matches_hand_computed_2x2():
    img = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    txt = torch.tensor([[0.8, 0.6], [0.0, 1.0]])
    s = 2.0
    logits = s * torch.tensor([[0.8, 0.0], [0.96, 0.8]])
    rows = -(logits[0, 0] - torch.logsumexp(logits[0], 0) + logits[1, 1] - torch.logsumexp(logits[1], 0)) / 2
    cols = -(logits[0, 0] - torch.logsumexp(logits[:, 0], 0) + logits[1, 1] - torch.logsumexp(logits[:, 1], 0)) / 2
    assert_close(clip_loss(img, txt, s), (rows + cols) / 2, reduction=4)  # 2x2 logits, 2-long dot products


def test_loss_is_symmetric_and_near_zero_when_aligned():
    a = F.normalize(torch.randn(8, 16), dim=-1)
    b = F.normalize(torch.randn(8, 16), dim=-1)
    # 16-long dot products, then each direction averages 8 log-sum-exps over 8 logits
    assert_close(clip_loss(a, b, 10.0), clip_loss(b, a, 10.0), reduction=8 * 8)
    eye = torch.eye(8, 16)
    assert_close(clip_loss(eye, eye, 100.0), torch.tensor(0.0), reduction=8 * 8)  # log(1 + 7 e^-100)
    assert clip_loss(a, b, 10.0) > 1.0
    with pytest.raises(ValueError, match="differ in shape"):
        clip_loss(a, b[:4], 1.0)


def test_logit_scale_init_and_clamp():
    ls = LogitScale()
    assert_close(ls(), torch.tensor(1 / 0.07))  # exp(log(1 / 0.07))
    with torch.no_grad():
        ls.logit_scale.fill_(10.0)
    assert_close(ls(), torch.tensor(100.0))


def test_tokenizer_round_trip_and_length_error():
    tok = ClipTokenizer(context_length=12)
    ids = tok.encode(["a red sandal left of a blue bag", "a photo of a cat."])
    assert ids.shape == (2, 12) and ids[0, 0] == tok.sot_id
    assert (ids[0] == tok.eot_id).sum() == 1
    assert tok.decode(ids[0]) == "a red sandal left of a blue bag"
    with pytest.raises(ValueError, match="more than context_length"):
        tok.encode("one two three four five six seven eight nine ten eleven")


def test_eot_pooling_ignores_padding_and_causality_holds():
    text = TextTransformer(vocab_size=20, context_length=6, width=16, depth=1, num_heads=2, eot_id=19).eval()
    a = torch.tensor([[1, 5, 7, 19, 0, 0]])
    b = torch.tensor([[1, 5, 7, 19, 3, 4]])  # same text, different junk after EOT
    assert_close(text(a), text(b), reduction=16 * 4)  # one block, MLP 16 -> 64


def test_clip_forward_and_zero_shot_on_constructed_case():
    cfg = ViTConfig(img_size=16, patch_size=8, in_chans=1, embed_dim=16, depth=1, num_heads=2)
    model = CLIP(cfg, TextTransformer(vocab_size=10, context_length=4, width=16, depth=1, num_heads=2), embed_dim=8)
    loss = model(torch.randn(3, 1, 16, 16), torch.tensor([[1, 2, 9, 0], [1, 3, 9, 0], [1, 4, 9, 0]]))
    assert loss.ndim == 0 and loss.item() > 0
    # Constructed zero-shot case: "text" embeddings that point along axis k for class k.
    names = ["cat", "dog", "bird"]

    def encode(texts):
        return torch.stack([F.one_hot(torch.tensor(names.index(t.split()[-1].rstrip("."))), 3).float() for t in texts])

    w = zero_shot_weights(encode, names, ["a photo of a {}.", "a drawing of a {}."])
    images = F.normalize(torch.tensor([[0.1, 0.9, 0.0], [0.2, 0.1, 0.7], [0.9, 0.3, 0.1]]), dim=-1)
    assert (images @ w.T).argmax(-1).tolist() == [1, 2, 0]


def test_compact_vocab_round_trip_and_errors():
    from vitcore.clip import CompactVocab

    tok = ClipTokenizer(context_length=12)
    texts = ["a red sandal left of a blue bag", "a green coat"]
    vocab = CompactVocab.from_texts(tok, texts)
    ids = tok.encode(texts)
    small = vocab(ids)
    assert len(vocab) < 20 and small.max() < len(vocab) and (small[ids == 0] == 0).all()
    assert (small == vocab.eot_id).sum() == 2 and (small[:, 0] == vocab.sot_id).all()
    assert tok.decode(vocab.to_original(small[0])) == texts[0]
    with pytest.raises(ValueError, match="not in the corpus"):
        vocab(tok.encode(["a purple dragon"]))
    # a text tower over the compact vocabulary pools at the compact EOT
    text = TextTransformer(len(vocab), 12, width=16, depth=1, num_heads=2, eot_id=vocab.eot_id)
    assert text(small).shape == (2, 16)


def test_mean_pool_ignores_padding():
    from vitcore.clip import mean_pool

    h = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]])
    assert_close(mean_pool(h, torch.tensor([[1, 1, 0]])), torch.tensor([[2.0, 3.0]]), reduction=3)


def test_locked_text_clip_trains_only_the_image_side():
    from vitcore.clip import LockedTextCLIP

    cfg = ViTConfig(img_size=16, patch_size=8, in_chans=1, embed_dim=16, depth=1, num_heads=2)
    model = LockedTextCLIP(cfg, text_dim=6)
    text = F.normalize(torch.randn(3, 6), dim=-1)
    x, y = torch.randn(12, 1, 16, 16), torch.arange(12) % 3
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    first = None
    for _ in range(40):
        loss = F.cross_entropy(model.logits(x, text), y)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert first is not None
    assert loss.item() < first / 2
    assert (model.logits(x, text).argmax(-1) == y).float().mean() > 0.9
    emb = model.encode_image(x)
    assert_close(emb.norm(dim=-1), torch.ones(12), reduction=emb.shape[-1])
