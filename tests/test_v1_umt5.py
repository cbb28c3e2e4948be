"""UMT5 encoder and the UMT5 text tokenizer (SentencePiece bytes / tokenizer.json / spiece.model)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from ace_core.errors import CheckpointError, InputError
from ace_core.v1.testing import spiece_to_tokenizer_json, tiny_spiece_model_bytes
from ace_core.v1.text_tokenizer import UMT5Tokenizer
from ace_core.v1.umt5 import UMT5Config, UMT5Encoder, relative_position_buckets

MANIFESTS = Path(__file__).resolve().parents[2] / "shared" / "reference" / "checkpoints"


# --- encoder ---------------------------------------------------------------------------------
def _naive_bucket(rel: int, num_buckets: int, max_distance: int) -> int:
    """Scalar restatement of the bidirectional T5 bucket rule."""
    half = num_buckets // 2
    bucket = half if rel > 0 else 0
    n = abs(rel)
    exact = half // 2
    if n < exact:
        return bucket + n
    large = exact + int(math.log(n / exact) / math.log(max_distance / exact) * (half - exact))
    return bucket + min(large, half - 1)


@pytest.mark.parametrize("nb,md", [(32, 128), (8, 20), (16, 7)])
def test_relative_position_buckets_match_scalar_rule(nb, md):
    got = relative_position_buckets(40, 40, nb, md)
    for q in range(40):
        for k in range(40):
            assert got[q, k].item() == _naive_bucket(k - q, nb, md), (q, k)
    assert got.min() >= 0 and got.max() < nb


def test_umt5_base_bucket_values():
    b = relative_position_buckets(1, 300, 32, 128)[0]
    assert b[0] == 0 and b[1] == 17 and b[7] == 23  # exact region: keys after the query use buckets 16..
    assert b[8] == 24 and b[299] == 31  # log region, clipped to the last bucket


def _tiny_config(**kw):
    base = dict(vocab_size=64, d_model=16, d_kv=4, d_ff=24, num_layers=2, num_heads=4,
                relative_attention_num_buckets=8, relative_attention_max_distance=20)
    base.update(kw)
    return UMT5Config(**base)


def _random_encoder(config, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    model = UMT5Encoder(config, dtype=torch.float32)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    return model.to(dtype) if dtype != torch.float32 else model


def test_config_defaults_are_umt5_base_and_from_reference():
    c = UMT5Config()
    assert (c.vocab_size, c.d_model, c.d_kv, c.d_ff, c.num_layers, c.num_heads) == (256384, 768, 64, 2048, 12, 12)
    assert (c.relative_attention_num_buckets, c.relative_attention_max_distance, c.layer_norm_epsilon) == (32, 128, 1e-6)
    c2 = UMT5Config.from_reference({"d_model": 32, "num_layers": 3, "dropout_rate": 0.1, "model_type": "umt5",
                                    "feed_forward_proj": "gated-gelu"})
    assert c2.d_model == 32 and c2.num_layers == 3 and c2.activation() == "gelu_new"
    with pytest.raises(ValueError):
        UMT5Config.from_reference({"feed_forward_proj": "gated-swish-x"})


def test_full_size_keys_match_manifest():
    manifest = MANIFESTS / "v1__umt5-base__model.safetensors.json"
    if not manifest.exists():
        pytest.skip("reference manifests not available")
    expected = {k: tuple(v["shape"]) for k, v in json.loads(manifest.read_text())["tensors"].items()}
    model = UMT5Encoder(UMT5Config(), device="meta")
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert got == expected


def test_padding_does_not_change_valid_positions():
    config = _tiny_config()
    model = _random_encoder(config).eval()
    ids = torch.tensor([[5, 9, 12, 3, 1]])
    with torch.no_grad():
        short = model(ids, torch.ones_like(ids))
        padded_ids = torch.cat([ids, torch.zeros(1, 4, dtype=torch.long)], 1)
        mask = torch.tensor([[1] * 5 + [0] * 4])
        long = model(padded_ids, mask)
    assert long.shape == (1, 9, 16)
    torch.testing.assert_close(long[:, :5], short, atol=1e-5, rtol=1e-5)
    # a different padding value must not leak into valid positions either
    with torch.no_grad():
        other = model(torch.cat([ids, torch.full((1, 4), 7)], 1), mask)
    torch.testing.assert_close(other[:, :5], short, atol=1e-5, rtol=1e-5)


def test_each_layer_has_its_own_position_bias():
    config = _tiny_config()
    model = _random_encoder(config).eval()
    ids = torch.tensor([[5, 9, 12, 3, 1]])
    with torch.no_grad():
        ref = model(ids)
        model.encoder.block[1].layer[0].SelfAttention.relative_attention_bias.weight.add_(1.0 * torch.arange(8.0)[:, None])
        changed = model(ids)
    assert not torch.allclose(ref, changed)


def test_half_precision_runs_close_to_float32():
    config = _tiny_config()
    ref_model = _random_encoder(config).eval()
    ids = torch.tensor([[5, 9, 12, 3, 1, 0], [4, 4, 1, 0, 0, 0]])
    mask = (torch.arange(6)[None] < torch.tensor([[6], [3]])).long()
    with torch.no_grad():
        ref = ref_model(ids, mask)
        bf = _random_encoder(config, dtype=torch.bfloat16)(ids, mask)
        fp16_model = UMT5Encoder(config, dtype=torch.float16)
        fp16_model.load_state_dict(ref_model.state_dict())
        fp16 = fp16_model(ids, mask)
    assert fp16_model.encoder.block[0].layer[1].DenseReluDense.wo.weight.dtype == torch.float32
    assert fp16_model.encoder.block[0].layer[1].DenseReluDense.wi_0.weight.dtype == torch.float16
    for out in (bf, fp16):
        assert torch.isfinite(out).all()
        assert (out.float() - ref).abs().max() < 0.1 * ref.abs().max()


def test_rejects_bad_ids_shape():
    model = UMT5Encoder(_tiny_config())
    with pytest.raises(ValueError):
        model(torch.tensor([1, 2, 3]))


# --- tokenizer -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def spiece():
    return tiny_spiece_model_bytes()


def test_tokenizer_from_bytes_eos_padding_mask(spiece):
    tok = UMT5Tokenizer.from_spiece_bytes(spiece)
    assert tok.eos_id == 1 and tok.pad_id == 0
    ids, mask = tok(["pop rock with drums", "jazz"])
    assert ids.dtype == torch.int64 and mask.dtype == torch.int64
    n0, n1 = int(mask[0].sum()), int(mask[1].sum())
    assert ids.shape == (2, max(n0, n1)) and n0 > n1
    assert ids[0, n0 - 1] == 1 and ids[1, n1 - 1] == 1  # </s> ends each row
    assert (ids[1, n1:] == 0).all() and (mask[1, n1:] == 0).all() and (mask[1, :n1] == 1).all()
    assert (ids[:, :-1][mask[:, :-1] == 1] != 1).sum() > 0
    # the pieces decode back to the text
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_proto=spiece)
    assert sp.decode(ids[0, : n0 - 1].tolist()) == "pop rock with drums"
    assert ids[0, : n0 - 1].tolist() == sp.encode("pop rock with drums")


def test_tokenizer_truncation_keeps_eos(spiece):
    tok = UMT5Tokenizer.from_spiece_bytes(spiece)
    text = "electronic dance music, synth lead, euphoric, jazz trio, upright bass"
    full, _ = tok([text], max_length=256)
    assert full.shape[1] > 6
    ids, mask = tok([text, "pop"], max_length=6)
    assert ids.shape == (2, 6) and mask[0].sum() == 6
    assert ids[0].tolist() == full[0, :5].tolist() + [1]
    single, _ = tok("pop", max_length=6)
    assert single.shape[0] == 1
    empty, empty_mask = tok([""])
    assert empty.tolist() == [[1]] and empty_mask.tolist() == [[1]]
    with pytest.raises(InputError):
        tok([text], max_length=0)
    with pytest.raises(InputError):
        tok([])


def test_tokenizer_from_uint8_tensor_equals_bytes(spiece):
    t = torch.frombuffer(bytearray(spiece), dtype=torch.uint8)
    a = UMT5Tokenizer.from_spiece_bytes(spiece)(["calm piano", "hip hop"])
    b = UMT5Tokenizer.from_spiece_bytes(t)(["calm piano", "hip hop"])
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_tokenizer_corrupt_bytes_raise(spiece):
    with pytest.raises(CheckpointError):
        UMT5Tokenizer.from_spiece_bytes(b"")
    with pytest.raises(CheckpointError):
        UMT5Tokenizer.from_spiece_bytes(b"\x00\x01garbage" * 10)
    with pytest.raises(CheckpointError):
        UMT5Tokenizer.from_spiece_bytes(torch.zeros(4, dtype=torch.float32))


def test_tokenizer_from_folder_json_and_spiece(spiece, tmp_path):
    texts = ["pop rock, energetic, female vocals", "ambient  piano,   calm", "hip hop beat"]
    ref = UMT5Tokenizer.from_spiece_bytes(spiece)(texts, max_length=12)
    json_dir = tmp_path / "umt5-base"
    json_dir.mkdir()
    (json_dir / "tokenizer.json").write_text(spiece_to_tokenizer_json(spiece), encoding="utf-8")
    got = UMT5Tokenizer.from_folder(json_dir)(texts, max_length=12)
    assert torch.equal(got[0], ref[0]) and torch.equal(got[1], ref[1])
    sp_dir = tmp_path / "sp"
    sp_dir.mkdir()
    (sp_dir / "spiece.model").write_bytes(spiece)
    got2 = UMT5Tokenizer.from_folder(sp_dir)(texts, max_length=12)
    assert torch.equal(got2[0], ref[0])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CheckpointError, match="empty"):
        UMT5Tokenizer.from_folder(empty)
    (empty / "tokenizer.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="tokenizer.json"):
        UMT5Tokenizer.from_folder(empty)
