"""Bad input gets a clear error that names the problem: never a silent wrong answer, a NaN, or an
unrelated exception from deep inside a library. Property-based where the space of bad inputs is
large (image sizes, box strings, damaged files)."""

import gzip
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vitcore import VisionTransformer, ViTConfig, patchify, unpatchify
from vitcore.boxes import BoxParseError, parse_box
from vitcore.checkpoint import load_weights, save_weights
from vitcore.tolerance import assert_close

FAST = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
SMALL = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


# ------------------------------------------------------------------------- checkpoint files
def _state():
    g = torch.Generator().manual_seed(0)
    return {"w": torch.randn(8, 8, generator=g), "b": torch.arange(8), "n": torch.zeros(3, dtype=torch.float16)}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """A good ``.pt`` (zip format), a legacy ``.pt`` and a ``.safetensors`` file, as bytes."""
    d = tmp_path_factory.mktemp("ckpt")
    torch.save(_state(), d / "zip.pt")
    torch.save(_state(), d / "legacy.pt", _use_new_zipfile_serialization=False)
    save_weights(_state(), d / "w.safetensors")
    return {name: (d / name).read_bytes() for name in ("zip.pt", "legacy.pt", "w.safetensors")}


@pytest.mark.parametrize("name", ["zip.pt", "legacy.pt", "w.safetensors"])
def test_good_checkpoints_load(tmp_path, checkpoints, name):
    path = tmp_path / name
    path.write_bytes(checkpoints[name])
    got = load_weights(path)
    assert set(got) == {"w", "b", "n"} and all(torch.equal(got[k], v) for k, v in _state().items())


@pytest.mark.parametrize("name", ["zip.pt", "legacy.pt"])
@pytest.mark.parametrize("keep", [0, 1, 10, 0.5, 0.9])
def test_truncated_torch_file_is_called_corrupt_or_truncated(tmp_path, checkpoints, name, keep):
    raw = checkpoints[name]
    path = tmp_path / name
    path.write_bytes(raw[: int(keep * len(raw)) if isinstance(keep, float) else keep])
    with pytest.raises(ValueError, match=r"corrupt or truncated") as err:
        load_weights(path)
    assert str(path) in str(err.value) and "untrusted" not in str(err.value)


def test_not_a_checkpoint_at_all(tmp_path):
    path = tmp_path / "notes.pt"
    path.write_text("these are my notes, not weights\n" * 20)
    with pytest.raises(ValueError, match=rf"{path}.*corrupt or truncated"):
        load_weights(path)


@pytest.mark.parametrize("keep", [0, 5, 8, 40, 0.5, 0.99])
def test_truncated_safetensors_file_is_called_corrupt(tmp_path, checkpoints, keep):
    raw = checkpoints["w.safetensors"]
    path = tmp_path / "w.safetensors"
    path.write_bytes(raw[: int(keep * len(raw)) if isinstance(keep, float) else keep])
    with pytest.raises(ValueError, match=rf"corrupt or truncated safetensors file {path}"):
        load_weights(path)


def test_pickled_objects_are_refused_as_untrusted(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    for blob, name in (({"w": torch.zeros(1), "obj": Evil()}, "zip.pt"), ({"w": Evil()}, "legacy.pt")):
        path = tmp_path / name
        torch.save(blob, path, _use_new_zipfile_serialization=name == "zip.pt")
        with pytest.raises(ValueError, match=r"refusing to load .*untrusted pickle") as err:
            load_weights(path)
        assert "print" in str(err.value) and "corrupt" not in str(err.value)


@pytest.mark.parametrize(
    "blob, message",
    [
        ({"w": torch.zeros(2), "step": 7}, r"not a flat dict of tensors: 'step' holds int"),
        ({"w": torch.zeros(2), "cfg": {"lr": 0.1}}, r"'cfg' holds dict"),
        ([torch.zeros(2)], r"not a flat dict of tensors: it holds a list"),
        (torch.zeros(2), r"it holds a Tensor"),
        ({"w": torch.zeros(2), 3: torch.zeros(1)}, r"key 3 is not a string"),
    ],
)
def test_wrong_content_is_named(tmp_path, blob, message):
    path = tmp_path / "odd.pt"
    torch.save(blob, path)
    with pytest.raises(ValueError, match=message):
        load_weights(path)


def test_a_directory_or_missing_file_is_not_a_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        load_weights(tmp_path / "nothing.pt")
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        load_weights(tmp_path)


@FAST
@given(
    which=st.sampled_from(["zip.pt", "legacy.pt", "w.safetensors"]),
    cut=st.floats(0.0, 1.0, exclude_max=True),
    flips=st.lists(st.tuples(st.floats(0.0, 1.0, exclude_max=True), st.integers(0, 255)), max_size=4),
)
def test_damaged_checkpoints_load_or_fail_clearly(tmp_path, checkpoints, which, cut, flips):
    """Cut short and/or with bytes overwritten: either the file still reads as a flat dict of tensors
    (a flip inside the tensor data goes unnoticed; nothing checksums them) or a ValueError says
    which kind of failure it is. Never another exception from deep inside torch or safetensors."""
    raw = bytearray(checkpoints[which])
    for where, value in flips:
        raw[int(where * len(raw))] = value
    if cut > 0.5:  # half of the examples are also truncated
        raw = raw[: int((cut - 0.5) * 2 * len(raw))]
    path = tmp_path / which
    path.write_bytes(bytes(raw))
    try:
        got = load_weights(path)
    except ValueError as err:
        msg = str(err)
        assert str(path) in msg
        assert "corrupt or truncated" in msg or "untrusted pickle" in msg or "flat dict of tensors" in msg, msg
    else:
        assert all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in got.items())


_VALUES = st.one_of(
    st.sampled_from([torch.float32, torch.float16, torch.bfloat16, torch.int64, torch.uint8, torch.bool]).map(
        lambda dt: torch.zeros(2, 3, dtype=dt)
    ),
    st.integers(),
    st.floats(allow_nan=True),
    st.text(max_size=5),
    st.none(),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


@SMALL
@given(content=st.dictionaries(st.text(min_size=1, max_size=8), _VALUES, min_size=1, max_size=4))
def test_checkpoint_content_is_a_flat_dict_of_tensors_or_named(tmp_path, content):
    path = tmp_path / "state.pt"
    torch.save(content, path)
    if all(isinstance(v, torch.Tensor) for v in content.values()):
        got = load_weights(path)
        assert got.keys() == content.keys() and all(got[k].dtype == v.dtype for k, v in content.items())
    else:
        bad = next(k for k, v in content.items() if not isinstance(v, torch.Tensor))
        with pytest.raises(ValueError, match="not a flat dict of tensors") as err:
            load_weights(path)
        assert repr(bad) in str(err.value)  # the first entry that is not a tensor is named


def test_pickled_object_in_a_state_dict_is_never_run(tmp_path, capsys):
    class Evil:
        def __reduce__(self):
            return (exec, ("print('ran code from the checkpoint')",))

    path = tmp_path / "evil.pt"
    torch.save({"w": torch.zeros(1), "obj": Evil()}, path)
    with pytest.raises(ValueError, match="untrusted pickle"):
        load_weights(path)
    assert "ran code" not in capsys.readouterr().out


def test_state_dict_of_the_wrong_dtype_kind_is_named():
    from vitcore import CheckpointMismatchError, load_state_dict_strict

    model = torch.nn.Linear(3, 2)
    state = {"weight": torch.zeros(2, 3, dtype=torch.int64), "bias": torch.zeros(2, dtype=torch.float16)}
    with pytest.raises(
        CheckpointMismatchError, match=r"dtype mismatches \(1\): weight: checkpoint torch.int64 vs model torch.float32"
    ):
        load_state_dict_strict(model, state)
    state["weight"] = torch.ones(2, 3, dtype=torch.float64)  # another float precision: cast, as torch does
    load_state_dict_strict(model, state)
    assert model.weight.dtype == torch.float32 and torch.equal(model.weight, torch.ones(2, 3))


# ----------------------------------------------------------------------------- patches
@FAST
@given(
    b=st.integers(1, 2),
    c=st.integers(1, 4),
    in_chans=st.one_of(st.none(), st.integers(1, 4)),
    p=st.integers(1, 6),
    h=st.integers(1, 24),
    w=st.integers(1, 24),
)
def test_patchify_round_trips_or_names_the_problem(b, c, in_chans, p, h, w):
    x = torch.randn(b, c, h, w)
    if in_chans is not None and in_chans != c:
        with pytest.raises(ValueError, match=f"expected {in_chans} input channels, got {c}"):
            patchify(x, p, in_chans=in_chans)
    elif h % p or w % p:
        with pytest.raises(ValueError, match=f"image size {h}x{w} is not a multiple of the patch size {p}x{p}"):
            patchify(x, p, in_chans=in_chans)
    else:
        tokens = patchify(x, p, in_chans=in_chans)
        assert tokens.shape == (b, (h // p) * (w // p), p * p * c)
        assert torch.equal(unpatchify(tokens, p, grid=(h // p, w // p), in_chans=c), x)  # a reshape: exact


@FAST
@given(
    n=st.integers(1, 20),
    p=st.integers(1, 5),
    c=st.integers(1, 3),
    claimed_c=st.integers(1, 3),
    grid=st.one_of(st.none(), st.tuples(st.integers(1, 5), st.integers(1, 5))),
)
def test_unpatchify_checks_token_length_and_grid(n, p, c, claimed_c, grid):
    tokens = torch.randn(1, n, p * p * c)
    if claimed_c != c:
        with pytest.raises(ValueError, match=f"token length {p * p * c} != patch_h \\* patch_w \\* channels"):
            unpatchify(tokens, p, grid=grid, in_chans=claimed_c)
        return
    side = round(n**0.5)
    if grid is None and side * side != n:
        with pytest.raises(ValueError, match=f"{n} tokens do not form a square grid"):
            unpatchify(tokens, p, in_chans=c)
    elif grid is not None and grid[0] * grid[1] != n:
        with pytest.raises(
            ValueError, match=rf"grid \({grid[0]}, {grid[1]}\) holds {grid[0] * grid[1]} patches, but got {n} tokens"
        ):
            unpatchify(tokens, p, grid=grid, in_chans=c)
    else:
        gh, gw = grid or (side, side)
        assert unpatchify(tokens, p, grid=grid, in_chans=c).shape == (1, c, gh * p, gw * p)


# ------------------------------------------------------------------------ ViT resolutions
@pytest.fixture(scope="module")
def vits():
    cfg: dict[str, Any] = dict(img_size=32, patch_size=8, in_chans=3, num_classes=5, embed_dim=16, depth=1, num_heads=2)
    return {dyn: VisionTransformer(ViTConfig(**cfg, dynamic_img_size=dyn)).eval() for dyn in (False, True)}


@FAST
@given(dynamic=st.booleans(), c=st.integers(1, 4), h=st.integers(1, 70), w=st.integers(1, 70))
def test_vit_forward_gives_the_right_shape_or_a_clear_error(vits, dynamic, c, h, w):
    model = vits[dynamic]
    x = torch.randn(2, c, h, w)
    if c != 3:
        problem = "expected 3 input channels, got"
    elif h % 8 or w % 8:
        problem = f"image size {h}x{w} is not a multiple of the patch size 8x8"
    elif not dynamic and (h, w) != (32, 32):
        problem = f"built for 32x32 images, got {h}x{w}"
    else:
        problem = None
    with torch.no_grad():
        if problem is None:
            assert model(x).shape == (2, 5)
            assert model.forward_features(x).shape == (2, 1 + (h // 8) * (w // 8), 16)
        else:
            with pytest.raises(ValueError, match=problem):
                model(x)


def test_vit_refuses_images_without_a_batch_dimension(vits):
    with pytest.raises(ValueError, match=r"expected images of shape \(B, C, H, W\)"):
        vits[False](torch.randn(3, 32, 32))


# ------------------------------------------------------------------------------- <box> text
_BOXY = st.lists(
    st.sampled_from(["<box>", "</box>", "(", ")", ",", " ", "-", "0", "7", "12", "999", "1000", "1001", "x", "\n"]),
    max_size=20,
).map("".join)


@settings(max_examples=50, deadline=None)
@given(text=st.one_of(st.text(max_size=40), _BOXY))
def test_parse_box_parses_or_names_the_text(text):
    try:
        box = parse_box(text)
    except BoxParseError as err:
        assert repr(text) in str(err)  # the malformed text is quoted
    else:
        assert len(box) == 4 and all(isinstance(v, int) for v in box)
        x1, y1, x2, y2 = box
        assert 0 <= x1 < x2 <= 1000 and 0 <= y1 < y2 <= 1000


def test_parse_box_names_a_coordinate_too_long_to_read():
    text = "<box>(" + "1" * 5000 + ",2,3,4)</box>"
    with pytest.raises(BoxParseError, match="outside the 0..1000 grid"):
        parse_box(text)


# ------------------------------------------------------------------- Fashion-MNIST files
@pytest.fixture(scope="module")
def labels_gz():
    """The compressed bytes of the small Fashion-MNIST file (10,000 test labels)."""
    from vitcore.data import fashion_mnist as data

    src = data.find_fashion_mnist(None)
    assert src is not None
    return (src / "t10k-labels-idx1-ubyte.gz").read_bytes()


@FAST
@given(
    cut=st.floats(0.0, 1.0, exclude_max=True),
    flips=st.lists(st.tuples(st.floats(0.0, 1.0, exclude_max=True), st.integers(0, 255)), max_size=3),
)
def test_damaged_data_file_is_refused_or_read_intact(tmp_path, labels_gz, cut, flips):
    """A damaged ``.gz`` either still decompresses to the exact official bytes (a flip in the gzip
    header's timestamp, say) or is refused with a ValueError naming the file."""
    from vitcore.data import fashion_mnist as data

    raw = bytearray(labels_gz)
    for where, value in flips:
        raw[int(where * len(raw))] = value
    if cut > 0.5:
        raw = raw[: int((cut - 0.5) * 2 * len(raw))]
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(bytes(raw))
    try:
        labels = data._read_idx(path)
    except ValueError as err:
        assert str(path) in str(err) and "corrupt" in str(err), str(err)
    else:
        assert bytes(raw) == labels_gz or labels.shape == (10000,)
        assert torch.equal(
            torch.from_numpy(labels.astype("int64")),
            torch.from_numpy(data._read_idx(_write(tmp_path / "ok", labels_gz)).astype("int64")),
        )


def _write(folder: Path, raw: bytes) -> Path:
    folder.mkdir(exist_ok=True)
    path = folder / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(raw)
    return path


@SMALL
@given(idx=st.integers(8, 10007), delta=st.integers(1, 9), unverified=st.booleans())
def test_wrong_contents_fail_the_checksum(tmp_path, labels_gz, idx, delta, unverified):
    """Valid gzip, valid idx header, one label changed: the SHA-256 of the contents catches it."""
    from vitcore.data import fashion_mnist as data

    raw = bytearray(gzip.decompress(labels_gz))
    raw[idx] = (raw[idx] + delta) % 10
    path = _write(tmp_path, gzip.compress(bytes(raw)))
    if unverified:  # verify=False reads it: the checksum is the only line of defence
        assert data._read_idx(path, verify=False)[idx - 8] == raw[idx]
    else:
        with pytest.raises(ValueError, match=rf"{path} has the wrong checksum.*corrupt"):
            data._read_idx(path)


@pytest.mark.parametrize("keep", [0, 10, 100, 0.5, 0.99])
def test_truncated_data_file_through_the_public_loader(tmp_path, keep):
    from vitcore.data import fashion_mnist as data

    src = data.find_fashion_mnist(None)
    assert src is not None  # the fmnist data the suite runs on
    for name in data.FILES:
        if name.startswith("t10k"):
            (tmp_path / name).write_bytes((src / name).read_bytes())
        else:
            (tmp_path / name).write_bytes(b"")  # only the test split is read
    name = "t10k-labels-idx1-ubyte.gz"
    raw = (tmp_path / name).read_bytes()
    (tmp_path / name).write_bytes(raw[: int(keep * len(raw)) if isinstance(keep, float) else keep])
    with pytest.raises(ValueError, match=rf"{tmp_path / name} (is not a readable gzip file|is empty).*corrupt"):
        data.load_fashion_mnist("test", data_dir=tmp_path, download=False)


# ------------------------------------------------------- load_state_dict_strict, property-based
_KEY = st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True)


@SMALL
@given(
    own=st.lists(_KEY, min_size=1, max_size=6, unique=True),
    extra=st.lists(st.tuples(_KEY, st.integers(0, 11).map(str), _KEY).map(".".join), max_size=4, unique=True),
    data=st.data(),
)
def test_load_state_dict_strict_names_every_missing_and_unexpected_key(own, extra, data):
    from vitcore import CheckpointMismatchError, load_state_dict_strict

    model = torch.nn.ParameterDict({k: torch.nn.Parameter(torch.zeros(2)) for k in own})
    missing = data.draw(st.lists(st.sampled_from(own), unique=True, max_size=len(own)))
    reshaped = data.draw(st.lists(st.sampled_from([k for k in own if k not in missing] or own), unique=True))
    reshaped = [k for k in reshaped if k not in missing]
    state = {k: torch.ones(3 if k in reshaped else 2) for k in own if k not in missing}
    state.update({k: torch.ones(2) for k in extra})
    if not (missing or extra or reshaped):
        load_state_dict_strict(model, state)
        assert all(torch.equal(p, torch.ones(2)) for p in model.values())
        return
    with pytest.raises(CheckpointMismatchError) as err:
        load_state_dict_strict(model, state)
    msg = str(err.value)
    if missing:
        assert f"missing keys ({len(missing)}): {', '.join(sorted(missing))}" in msg
    if extra:
        assert f"unexpected keys ({len(extra)}): {', '.join(sorted(extra))}" in msg
    for k in reshaped:
        assert f"{k}: checkpoint (3,) vs model (2,)" in msg
    assert all(torch.equal(p, torch.zeros(2)) for p in model.values())  # nothing loaded


# ------------------------------------------ dtypes, empty batches and NaN at the public entries
_ENTRIES = {
    "forward": lambda m, x: m(x),
    "forward_features": lambda m, x: m.forward_features(x),
    "get_intermediate_layers": lambda m, x: m.get_intermediate_layers(x, 1),
    "forward_with_attention": lambda m, x: m.forward_with_attention(x),
    "patch_embed": lambda m, x: m.patch_embed(x),
}
_DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.uint8, torch.int64, torch.bool]


@SMALL
@given(entry=st.sampled_from(sorted(_ENTRIES)), dtype=st.sampled_from(_DTYPES), amp=st.booleans())
def test_model_entries_name_a_dtype_they_cannot_take(vits, entry, dtype, amp):
    x = (torch.rand(2, 3, 32, 32) * (255 if dtype == torch.uint8 else 1)).to(dtype)
    # float32 always; under autocast also the half types (autocast converts them; torch leaves float64 alone)
    ok = dtype == torch.float32 or (amp and dtype in (torch.float16, torch.bfloat16))
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
        if ok:
            _ENTRIES[entry](vits[False], x)
            return
        with pytest.raises(TypeError, match=rf"images are {dtype}.*{torch.float32}") as err:
            _ENTRIES[entry](vits[False], x)
    if dtype == torch.uint8:
        assert "vitcore.data.normalise" in str(err.value)  # says how to convert pixels


def test_a_float64_model_takes_float64_images(vits):
    model = VisionTransformer(vits[False].config).double().eval()
    with torch.no_grad():
        assert model(torch.rand(1, 3, 32, 32, dtype=torch.float64)).dtype == torch.float64
        with pytest.raises(TypeError, match="images are torch.float32, but the model's weights are torch.float64"):
            model(torch.rand(1, 3, 32, 32))


@pytest.mark.parametrize("entry", sorted(_ENTRIES))
def test_model_entries_name_an_empty_batch(vits, entry):
    with pytest.raises(ValueError, match=r"empty batch: images of shape \(0, 3, 32, 32\)"):
        _ENTRIES[entry](vits[False], torch.zeros(0, 3, 32, 32))


def test_patch_functions_and_normalise_name_an_empty_batch():
    from vitcore import check_image
    from vitcore.data import normalise

    for fn in (lambda x: check_image(x, 4), lambda x: patchify(x, 4), normalise):
        with pytest.raises(ValueError, match="empty batch"):
            fn(torch.zeros(0, 1, 8, 8, dtype=torch.uint8))
    with pytest.raises(ValueError, match="empty batch"):
        unpatchify(torch.zeros(0, 4, 16), 4, in_chans=1)
    with pytest.raises(TypeError, match="got ndarray.*image_to_tensor"):
        patchify(torch.zeros(1, 1, 8, 8).numpy(), 4)  # type: ignore[arg-type]  # what a reader might pass


@SMALL
@given(
    entry=st.sampled_from(sorted(_ENTRIES)),
    bad=st.lists(
        st.tuples(st.integers(0, 1), st.integers(0, 2), st.integers(0, 31), st.integers(0, 31)),
        min_size=0,
        max_size=5,
        unique=True,
    ),
    value=st.sampled_from([float("nan"), float("inf"), -float("inf")]),
)
def test_model_entries_refuse_nan_and_inf_and_count_them(vits, entry, bad, value):
    x = torch.rand(2, 3, 32, 32)
    for b, c, i, j in bad:
        x[b, c, i, j] = value
    with torch.no_grad():
        if not bad:
            _ENTRIES[entry](vits[False], x)
            return
        with pytest.raises(ValueError, match=rf"images contain {len(bad)} NaN or inf value\(s\) \(of {x.numel()}\)"):
            _ENTRIES[entry](vits[False], x)


@pytest.mark.slow  # the first meta-device forward of a process loads torch's meta kernels (seconds)
def test_the_finite_check_is_skipped_on_the_meta_device(vits):
    import copy

    from vitcore import count_macs

    model = copy.deepcopy(vits[False]).to("meta")  # meta tensors hold no values to check
    assert count_macs(model, (1, 3, 32, 32)) > 0


# --------------------------------------------------------------------------------- normalise
@FAST
@given(
    shape=st.sampled_from([(1, 28, 28), (3, 1, 28, 28), (2, 3, 8, 8)]),
    seed=st.integers(0, 99),
    dtype=st.sampled_from([torch.float32, torch.float64, torch.float16]),
)
def test_normalise_takes_uint8_pixels_or_floats_in_the_unit_range_alike(shape, seed, dtype):
    from vitcore.data import MEAN, STD, normalise

    u8 = torch.randint(0, 256, shape, dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))
    expected = (u8.float() / 255.0 - MEAN) / STD  # the chapter-5 formula
    expected = expected.unsqueeze(1) if u8.ndim == 3 else expected
    assert torch.equal(normalise(u8), expected)  # uint8: bit for bit as before
    unit = (u8.double() / 255).to(dtype)  # the same pixels as floats in [0, 1]: not divided again
    assert normalise(unit).dtype == torch.float32
    assert_close(normalise(unit), expected, dtype=dtype)


@FAST
@given(seed=st.integers(0, 99), case=st.sampled_from(["0..255 floats", "normalised already", "nan", "inf"]))
def test_normalise_names_floats_it_cannot_take(seed, case):
    from vitcore.data import normalise

    u8 = torch.randint(0, 256, (4, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))
    u8[0, 0, 0], u8[0, 0, 1] = 0, 255  # the whole range is there
    if case == "0..255 floats":
        x, message = u8.float(), r"must be in \[0, 1\], got values in \[0, 255\]: pixels 0..255 in a float"
    elif case == "normalised already":
        x, message = normalise(u8), r"must be in \[0, 1\].*normalised already\?"
    else:
        x, message = u8.float() / 255, r"images contain 1 NaN or inf"
        x[1, 2, 3] = float(case)
    with pytest.raises(ValueError, match=message):
        normalise(x)


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.int8, torch.bool])
def test_normalise_names_other_integer_dtypes(dtype):
    from vitcore.data import normalise

    with pytest.raises(TypeError, match=rf"uint8 pixels \(0..255\) or floating-point images in \[0, 1\], got {dtype}"):
        normalise(torch.zeros(2, 28, 28, dtype=dtype))
    with pytest.raises(ValueError, match=r"\(B, H, W\) or \(B, C, H, W\), got shape \(28, 28\)"):
        normalise(torch.zeros(28, 28, dtype=torch.uint8))
