"""The grounding tokenizer (chapters 12 and 13) is strict: every word it cannot encode, every special
token typed as text, every number off the coordinate grid and every id it cannot decode is a
``ValueError`` that names it; ``lenient=True`` maps unknown words to ``<unk>``. Property-based over
vocabularies and instructions built from them."""

import re
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from vitcore.boxes import format_box
from vitcore.grounding import encode_grounding, ground, word_ids
from vitcore.vlm import GroundingTokenizer, TinyLM, VisionLanguageModel

FAST = settings(max_examples=40, deadline=None)
CONTROL = ["<pad>", "<bos>", "<eos>", "<unk>"]
MARKUP = ["<box>", "</box>"]
PUNCT = ["(", ")", ",", "."]

_word = st.from_regex(r"[a-z]{1,7}", fullmatch=True)
_vocab = st.lists(_word, min_size=1, max_size=8, unique=True)


def _old_encode(tok: GroundingTokenizer, text: str) -> list[int]:
    """The rule the shipped checkpoints were trained with: split, then look each piece up."""
    return [tok.stoi.get(t, tok.unk_id) for t in GroundingTokenizer.split(text)]


@st.composite
def vocab_and_text(draw, multi: bool = False):
    """A vocabulary (with entries that split() would cut if ``multi``) and a text made of its
    entries, coordinates on its grid and punctuation, joined by one or more spaces."""
    words = draw(_vocab)
    if multi:
        pairs = draw(st.lists(st.tuples(_word, _word, st.sampled_from([" ", "-", "/"])), min_size=1, max_size=3))
        words += [a + sep + b for a, b, sep in pairs]
    grid = draw(st.integers(1, 60))
    parts = draw(
        st.lists(
            st.one_of(st.sampled_from(words), st.integers(0, grid).map(str), st.sampled_from(PUNCT)),
            min_size=1,
            max_size=12,
        )
    )
    spaces = draw(st.lists(st.sampled_from([" ", "  ", "\t"]), min_size=len(parts), max_size=len(parts)))
    text = "".join(s + p for s, p in zip(spaces, parts)).strip()
    return GroundingTokenizer(words, grid=grid), parts, text


@FAST
@given(vocab_and_text(multi=True))
def test_round_trip_for_any_text_built_from_the_vocabulary(case):
    tok, parts, text = case
    ids = tok.encode(text, bos=True, eos=True)
    assert ids[0] == tok.bos_id and ids[-1] == tok.eos_id
    back = tok.decode(ids)
    assert tok.encode(back) == ids[1:-1]  # text -> ids -> text -> the same ids
    assert tok.decode(tok.encode(back)) == back  # decoded text is canonical
    # every entry is a token of its own, also those split() would cut ("t-shirt", "ankle boot")
    for w in parts:
        assert tok.encode(w) == [tok.stoi[w]], w


@FAST
@given(words=_vocab, grid=st.integers(1, 40), data=st.data())
def test_ids_to_text_to_ids_is_the_identity(words, grid, data):
    tok = GroundingTokenizer(words, grid=grid)
    not_control = [i for i, t in enumerate(tok.itos) if t not in CONTROL]
    ids = data.draw(st.lists(st.sampled_from(not_control), min_size=1, max_size=15))
    assert tok.encode(tok.decode(ids), answer=True) == ids


@FAST
@given(vocab_and_text())
def test_ids_of_single_piece_vocabularies_are_unchanged(case):
    """The shipped grounding and VQA heads were trained on split-then-look-up ids; vocabularies
    made of single pieces (theirs) must give exactly those ids."""
    tok, _, text = case
    assert tok.encode(text) == _old_encode(tok, text)


def test_the_shipped_vocabularies_give_the_ids_they_were_trained_with():
    from vitcore import shipped

    for name in ("grounding_vlm", "vqa_block11"):
        m = shipped.entry(name)["recipe"]["model"]
        tok = GroundingTokenizer(m["words"], grid=m["grid"])
        assert len(tok) == len(m["words"]) + 10 + m["grid"] + 1  # specials, coordinates, words
        for w in m["words"]:
            assert tok.tokens(w) == GroundingTokenizer.split(w) == [w]
        text = " ".join(m["words"]) + " " + format_box((0, 1, m["grid"] - 1, m["grid"]))
        assert tok.encode(text, answer=True) == _old_encode(tok, text)


@FAST
@given(words=_vocab, unknown=_word, where=st.integers(0, 8))
def test_every_unknown_word_is_refused_by_name_and_lenient_maps_it_to_unk(words, unknown, where):
    tok = GroundingTokenizer(words)
    if unknown in tok.stoi:
        return
    parts = words[:where] + [unknown] + words[where:]
    text = " ".join(parts)
    with pytest.raises(ValueError, match=rf"unknown word.*'{unknown}'.*lenient=True"):
        tok.encode(text)
    ids = tok.encode(text, lenient=True)
    assert ids[parts.index(unknown)] == tok.unk_id
    assert GroundingTokenizer(words, lenient=True).encode(text) == ids  # the tokenizer's own setting
    with pytest.raises(ValueError, match=unknown):
        GroundingTokenizer(words, lenient=True).encode(text, lenient=False)


@FAST
@given(words=_vocab, special=st.sampled_from(CONTROL + MARKUP), where=st.integers(0, 8), answer=st.booleans())
def test_special_tokens_typed_in_the_text_are_refused(words, special, where, answer):
    tok = GroundingTokenizer(words, grid=20)
    text = " ".join(words[:where] + [special] + words[where:])
    if special in MARKUP and answer:
        assert tok.stoi[special] in tok.encode(text, answer=True)  # an answer's box markup
        return
    with pytest.raises(ValueError, match=re.escape(special)):
        tok.encode(text, answer=answer)
    with pytest.raises(ValueError, match=re.escape(special)):
        tok.encode(text, answer=answer, lenient=True)  # lenient is about unknown words only


@FAST
@given(grid=st.integers(1, 100), over=st.integers(1, 10**6))
def test_coordinates_off_the_grid_are_refused(grid, over):
    tok = GroundingTokenizer(["find"], grid=grid)
    assert tok.encode(format_box((0, 0, grid, grid)), answer=True)  # the grid's edges are tokens
    bad = grid + over
    with pytest.raises(ValueError, match=rf"'{bad}'.*0\.\.{grid}"):
        tok.encode(format_box((0, 0, bad, grid)), answer=True)
    assert tok.encode(str(bad), lenient=True) == [tok.unk_id]


@FAST
@given(words=_vocab, bad=st.one_of(st.integers(max_value=-1), st.integers(min_value=0).map(lambda k: k + 10**6)))
def test_decode_refuses_ids_outside_the_vocabulary(words, bad):
    tok = GroundingTokenizer(words, grid=10)
    bad = bad if bad < 0 else len(tok) + bad % 100  # at or just above the vocabulary size
    with pytest.raises(ValueError, match=rf"\[{bad}\].*0\.\.{len(tok) - 1}"):
        tok.decode([tok.bos_id, bad, tok.eos_id])
    assert tok.decode([tok.bos_id, len(tok) - 1]) == tok.itos[-1]  # the last id is fine


def test_decode_names_an_id_equal_to_the_vocabulary_size():
    tok = GroundingTokenizer(["bag"], grid=4)
    with pytest.raises(ValueError, match=rf"\[{len(tok)}\]"):
        tok.decode([len(tok)])
    with pytest.raises(ValueError, match=r"\[-1\]"):
        ids: Any = torch.tensor([-1])  # a tensor of ids, as a model's argmax gives them
        tok.decode(ids)  # used to return the last word


def test_vocabulary_entries_are_checked():
    with pytest.raises(ValueError, match="holds no word"):
        GroundingTokenizer(["bag", "  "])
    with pytest.raises(ValueError, match="special token"):
        GroundingTokenizer(["find <eos>"])
    with pytest.raises(TypeError, match="collection of words"):
        GroundingTokenizer("find the bag")
    with pytest.raises(ValueError, match="grid"):
        GroundingTokenizer(["bag"], grid=0)


def test_hyphenated_and_multi_word_entries():
    tok = GroundingTokenizer(["find", "the", "t-shirt", "ankle boot", "t", "shirt"], grid=8)
    assert tok.tokens("find the T-Shirt") == ["find", "the", "t-shirt"]
    assert tok.tokens("the ankle   boot") == ["the", "ankle boot"]  # any run of spaces inside
    assert tok.tokens("t - shirt") == ["t", "-", "shirt"]  # not the entry: its pieces
    with pytest.raises(ValueError, match=r"\['-'\]"):
        tok.encode("t - shirt")
    with pytest.raises(ValueError, match=r"'shirts'"):
        tok.encode("t-shirts")  # the entry is not matched inside a longer word
    assert tok.decode(tok.encode("find the ankle boot")) == "find the ankle boot"


def _tiny_vlm(tok: GroundingTokenizer) -> VisionLanguageModel:
    from vitcore.vit import VisionTransformer, ViTConfig

    vit = VisionTransformer(ViTConfig(img_size=8, patch_size=4, num_classes=0, embed_dim=8, depth=1, num_heads=2))
    return VisionLanguageModel(vit, TinyLM(len(tok), dim=8, depth=1, num_heads=2, max_len=32))


def test_empty_batches_and_bad_instructions_are_named():
    tok = GroundingTokenizer(["find", "the", "bag"], grid=8)
    with pytest.raises(ValueError, match="empty batch"):
        encode_grounding(tok, [], torch.zeros(0, 4), (8, 8))
    with pytest.raises(ValueError, match="empty batch"):
        encode_grounding(tok, [], None, (8, 8))
    with pytest.raises(ValueError, match="empty batch"):
        word_ids(tok, [])
    with pytest.raises(ValueError, match="empty batch"):
        ground(_tiny_vlm(tok), tok, torch.zeros(0, 3, 8, 8), [])
    with pytest.raises(TypeError, match="wrap it in a list"):
        word_ids(tok, "find the bag")
    with pytest.raises(ValueError, match="zebra"):
        encode_grounding(tok, ["find the zebra"], torch.tensor([[0, 0, 4, 4]]), (8, 8))
    with pytest.raises(ValueError, match="box markup"):
        word_ids(tok, ["find the <box>"])
    ids, mask = encode_grounding(tok, ["find the bag"], torch.tensor([[0, 0, 4, 4]]), (8, 8))
    assert tok.decode(ids[0][mask[0].bool()].tolist()) == format_box((0, 0, 4, 4))
