"""ACE-Step 1.5 5 Hz LM: constrained decoding, user fields, seeds, NaN, cancel, codes, writing.

A tiny random LM with the real vocabulary (Qwen3's 151669 ids + the 64000 code rows, hidden 16)
and the real tokenizer: every id the grammar uses is the published one.
"""

from __future__ import annotations

import pytest
import torch

from ace_core.errors import InputError
from ace_core.v15 import prompts as P
from ace_core.v15.lm import (LMNumericsError, LMSampling, ThinkOptions, codes_text, codes_to_hints, format_song,
                             parse_codes, think, tiny_five_hz_lm, write_song)
from ace_core.v15.lm.constraints import Allowed, Forced, Line, cot_grammar, token_tables
from ace_core.v15.lm.decode import decode_grammar
from ace_core.v15.lm.model import FiveHzLM
from ace_core.v15.pipeline import SongFields
from ace_core.v15.text_tokenizer import THINK_END_ID, THINK_ID, load_tokenizer

METADATA_ONLY = ThinkOptions(caption=False, codes=False, max_duration=12)


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer()


@pytest.fixture(scope="module")
def lm():
    return tiny_five_hz_lm()


def _valid_metadata(m: dict, max_duration: int = 12) -> None:
    assert P.BPM_RANGE[0] <= m["bpm"] <= P.BPM_RANGE[1]
    assert P.DURATION_RANGE[0] <= m["duration"] <= max_duration
    assert m["keyscale"] in P.VALID_KEYSCALES
    assert m["language"] in P.VALID_LANGUAGES
    assert int(m["timesignature"]) in P.VALID_TIME_SIGNATURES


@pytest.mark.parametrize("seed", [0, 1])
def test_constrained_fields_are_valid_and_codes_exact(lm, tok, seed):
    opts = ThinkOptions(caption=False, max_duration=10)
    r = think(lm, tok, "calm piano", "[verse]\nla la", options=opts, sampling=LMSampling(temperature=1.0, top_p=1.0),
              seed=seed, batch_size=2)
    _valid_metadata(r.metadata)
    assert r.text.startswith("<think>\n") and r.text.endswith("</think>")
    assert r.generated == ("bpm", "duration", "keyscale", "timesignature", "language")
    assert r.codes.shape == (2, r.metadata["duration"] * 5)  # exactly duration x 5 codes per item
    assert int(r.codes.min()) >= 0 and int(r.codes.max()) <= P.MAX_AUDIO_CODE
    assert P.format_cot(r.metadata) == r.cot and P.parse_lm_output(r.cot)[0] == r.metadata
    assert len(P.audio_code_values(r.codes_text(1))) == r.codes.shape[1]


def test_caption_line_rules(lm, tok):
    tables = token_tables(tok)
    g = cot_grammar(tables, given={"bpm": 90}, generate=("caption",), caption_tokens=12)
    tokens = decode_grammar(lm, g, tok.encode(P.lm_cot_prompt("x", "y")), generator=torch.Generator().manual_seed(0),
                            sampling=LMSampling(temperature=1.5, top_p=1.0, cfg_scale=1.0))
    text = tok.decode(tokens)
    assert tokens[:2] == [THINK_ID, tables.newline] and tokens[-1] == THINK_END_ID
    assert text.startswith("<think>\nbpm: 90\ncaption:") and text.endswith("\n</think>")
    caption = text.split("caption:", 1)[1].rsplit("\n</think>", 1)[0]
    assert "`" not in caption and "\n\n" not in caption and len(tokens) <= 2 + 7 + 2 + 12 + 1 + 1  # <think>\n, bpm line, caption:, 12 + a forced break, </think>
    for line in caption.split("\n")[1:]:
        assert line[:1] in (" ", "\t")  # a continuation line is indented (YAML folding)
    # after a line break only an indented token or the next field's name may follow
    line = Line(tables, multiline=True, end_token=777, max_tokens=50)
    assert isinstance(line.step(), Allowed) and not bool(line.step().text_mask[tables.newline])  # no empty caption
    line.advance(tok.encode(" A")[0])
    line.advance(tables.newline)
    after = line.step()
    assert after.ids.tolist() == [777] and bool(after.text_mask[tok.encode(" x")[0]])
    assert not bool(after.text_mask[tok.encode("x")[0]])
    assert line.advance(777) is False and line.step() is None
    capped = Line(tables, multiline=True, end_token=1, max_tokens=1)
    capped.advance(tok.encode(" A")[0])
    assert capped.step() == Forced((tables.newline,))


def test_user_fields_are_kept(lm, tok):
    given = dict(bpm=97, keyscale="f# MINOR", timesignature="3/4", duration=10.4, language="en")
    r = think(lm, tok, "rock", "[Instrumental]", options=METADATA_ONLY, seed=3, **given)
    assert r.generated == () and r.text == ""  # nothing left to generate: no phase 1
    assert r.metadata == {"bpm": 97, "keyscale": "F# minor", "timesignature": "3", "duration": 10, "language": "en"}
    some = think(lm, tok, "rock", "", options=METADATA_ONLY, seed=3, bpm=97, keyscale="Bb major")
    assert "bpm: 97\n" in some.text and "keyscale: Bb major\n" in some.text
    assert some.metadata["bpm"] == 97 and some.metadata["keyscale"] == "Bb major"
    assert set(some.generated) == {"duration", "timesignature", "language"}
    # the codes follow the exact user duration (int(10.4 * 5) = 52), the CoT says 10
    coded = think(lm, tok, "rock", "", options=ThinkOptions(caption=False, metadata=False, language=False),
                  sampling=LMSampling(temperature=0.0), duration=10.4)
    assert coded.codes.shape == (1, 52) and "duration: 10\n" in coded.cot
    fields = coded.song_fields(SongFields(caption="rock", lyrics="[Instrumental]"))
    assert fields.task == "cover" and fields.duration == pytest.approx(10.4) and fields.caption == "rock"
    with pytest.raises(InputError, match="bpm"):
        think(lm, tok, "rock", "", bpm=500)


def test_seeds_are_reproducible(lm, tok):
    run = dict(options=ThinkOptions(caption=False, max_duration=10), sampling=LMSampling(temperature=1.0, top_k=50))
    a = think(lm, tok, "jazz", "", seed=11, batch_size=2, **run)
    b = think(lm, tok, "jazz", "", seed=11, batch_size=2, **run)
    c = think(lm, tok, "jazz", "", seed=12, batch_size=1, **run)
    assert a.metadata == b.metadata and torch.equal(a.codes, b.codes)
    assert not torch.equal(a.codes[0], a.codes[1])  # item k draws from seed + k
    assert c.codes.shape[1] == a.codes.shape[1] or c.metadata != a.metadata
    if c.metadata == a.metadata:
        assert torch.equal(c.codes[0], a.codes[1])  # batch item 1 of seed 11 is the single run of seed 12


class _NanLM(FiveHzLM):
    """Logits with NaN/inf in every row but one code (or everywhere)."""

    def __init__(self, base: FiveHzLM, everywhere: bool = False):
        super().__init__(base.config, device="meta")
        self.load_state_dict(base.state_dict(), assign=True)
        self.everywhere = everywhere

    def logits(self, hidden, rows=None):
        out = super().logits(hidden, rows)
        if self.everywhere:
            return torch.full_like(out, float("nan"))
        out[..., 1:] = float("nan")
        out[..., 1::2] = float("inf") if out.shape[-1] > 2 else out[..., 1::2]
        return out


def test_nan_logits_are_handled(lm, tok, caplog):
    opts = ThinkOptions(metadata=False, caption=False, language=False)
    r = think(_NanLM(lm).eval(), tok, "a", "", duration=10, options=opts,
              sampling=LMSampling(temperature=1.0, cfg_scale=1.0), seed=0)
    # +inf is clamped (a finite winner), NaN left out: the draws stay inside the finite candidates
    assert r.codes.shape == (1, 50) and set(r.codes.reshape(-1).tolist()) <= set(range(1, 64000, 2))
    assert "NaN/inf logits" in caplog.text
    with pytest.raises(LMNumericsError, match="no finite logit"):
        think(_NanLM(lm, everywhere=True).eval(), tok, "a", "", duration=10, options=opts, seed=0)


def test_cancel_mid_generation(lm, tok):
    seen = []

    class Stop(Exception):
        pass

    def hook(done, total):
        seen.append((done, total))
        if done >= 7:
            raise Stop

    codes_only = ThinkOptions(metadata=False, caption=False, language=False)
    with pytest.raises(Stop):
        think(lm, tok, "a", "", duration=60, options=codes_only, progress=hook)
    assert [d for d, _ in seen] == list(range(1, 8)) and seen[0][1] == 300  # stopped after 7 of 300 codes
    seen.clear()
    with pytest.raises(Stop):  # in phase 1 too
        think(lm, tok, "a", "", duration=60, options=ThinkOptions(caption=False), progress=hook)
    assert 7 <= seen[-1][0] < 20 and all(d <= t for d, t in seen)


def test_codes_text_and_hints():
    assert parse_codes("<|audio_code_5|><|audio_code_70000|>").tolist() == [5, 63999]  # clamped, as upstream
    assert parse_codes("1, 2 3").tolist() == [1, 2, 3] and parse_codes([4, 5]).tolist() == [4, 5]
    assert codes_text([1, 22]) == "<|audio_code_1|><|audio_code_22|>"
    for bad in ("1 x", "", "64000"):
        with pytest.raises(InputError, match="audio codes"):
            parse_codes(bad)
    from ace_core.v15.bundle import tiny_v15_bundle
    from ace_core.v15.silence import silence_latent

    b = tiny_v15_bundle()
    silence = silence_latent(60)
    hints = codes_to_hints(b.model, torch.tensor([[1, 2, 3], [4, 5, 6]]), 18, silence)
    assert hints.shape == (2, 18, 64)
    assert torch.equal(hints[:, 15:], silence[:, 15:18].expand(2, -1, -1).to(hints.dtype))  # padded with silence
    assert codes_to_hints(b.model, torch.tensor([[1, 2, 3]]), 11, silence).shape == (1, 11, 64)


def test_codes_drive_the_dit(lm, tok):
    from ace_core.v15 import pipeline
    from ace_core.v15.bundle import tiny_v15_bundle
    from ace_core.v15.silence import silence_latent

    b = tiny_v15_bundle()
    r = think(lm, tok, "pop", "", duration=10, options=ThinkOptions(metadata=False, caption=False, language=False),
              sampling=LMSampling(temperature=0.0))
    fields = r.song_fields(pipeline.SongFields(caption="pop", lyrics="[Instrumental]"))
    text = pipeline.encode_text(b.text_encoder, b.text_tokenizer, [fields])
    assert text.prompts[0].is_cover  # the cover instruction
    frames = pipeline.frames_for_seconds(fields.duration)
    hints = codes_to_hints(b.model, r.codes, frames, silence_latent(frames))
    settings = pipeline.SamplerSettings15(steps=1)
    with_codes = pipeline.generate(b.model, text, kind="turbo", seconds=fields.duration, settings=settings, hints=hints)
    other = codes_to_hints(b.model, (r.codes + 1000) % 64000, frames, silence_latent(frames))
    moved = pipeline.generate(b.model, text, kind="turbo", seconds=fields.duration, settings=settings, hints=other)
    assert with_codes.shape == (1, 64, frames) and not torch.allclose(with_codes, moved)


def test_writing_modes(lm, tok):
    song = write_song(lm, tok, "a happy song", language="de", seed=1, caption_tokens=6, max_lyrics_tokens=5,
                      sampling=LMSampling(temperature=1.0))
    assert song.language == "de" and song.keyscale in P.VALID_KEYSCALES and song.caption
    assert song.text.count("</think>") == 1 and song.text.endswith("<|im_end|>")
    assert "genres:" in song.text
    tidy = format_song(lm, tok, "rock", "[verse]\nhey", bpm=120, seed=1, caption_tokens=6, max_lyrics_tokens=5,
                       sampling=LMSampling(temperature=1.0))
    assert tidy.bpm == 120 and "bpm: 120\n" in tidy.text and tidy.lyrics


def test_sampling_settings_are_checked():
    for bad in (dict(temperature=-1), dict(top_p=0), dict(top_k=-2), dict(cfg_scale=0.5), dict(min_p=2)):
        with pytest.raises(InputError, match="LM"):
            LMSampling(**bad).checked()
