"""Transformer with KV cache, the codec LMs, sampling and generation (tiny random models)."""

from __future__ import annotations

import pytest
import torch

from speechlm.lm.delay import undelay
from speechlm.lm.generate import GenRequest, generate, generate_valle, max_frames_for, pad_text
from speechlm.lm.model import CodecLM, LMBatch, LMConfig, build_lm, valle_loss, voicecraft_loss
from speechlm.lm.sampling import SamplingConfig, filter_logits, repetition_aware_sample, sample
from speechlm.lm.transformer import Transformer
from speechlm.lm.voicecraft import AudioVocab, infill_context, unmask


def test_kv_cache_matches_full_forward() -> None:
    torch.manual_seed(0)
    tr = Transformer(dim=32, n_layers=2, n_heads=4).eval()
    x = torch.randn(2, 9, 32)
    key_mask = torch.ones(2, 9, dtype=torch.bool)
    key_mask[1, :3] = False  # row 1 is left-padded
    full = tr(x, key_mask=key_mask)
    cache = tr.new_cache()
    parts = [tr(x[:, :5], cache=cache, key_mask=key_mask[:, :5])]
    for t in range(5, 9):
        parts.append(tr(x[:, t : t + 1], cache=cache))
    inc = torch.cat(parts, dim=1)
    assert torch.allclose(full, inc, atol=1e-5)
    assert torch.isfinite(full).all()


def test_left_padding_does_not_change_outputs() -> None:
    torch.manual_seed(0)
    tr = Transformer(dim=32, n_layers=2, n_heads=4).eval()
    x = torch.randn(1, 6, 32)
    padded = torch.cat([torch.randn(1, 3, 32), x], dim=1)
    mask = torch.tensor([[False] * 3 + [True] * 6])
    assert torch.allclose(tr(x), tr(padded, key_mask=mask)[:, 3:], atol=1e-5)


def test_causality() -> None:
    torch.manual_seed(0)
    tr = Transformer(dim=16, n_layers=1, n_heads=2).eval()
    x = torch.randn(1, 6, 16)
    y = x.clone()
    y[:, 4:] += 1.0
    assert torch.allclose(tr(x)[:, :4], tr(y)[:, :4], atol=1e-6)
    assert not torch.allclose(tr(x)[:, 4:], tr(y)[:, 4:])


def _tiny_lm(k: int = 3, card: int = 16) -> CodecLM:
    torch.manual_seed(0)
    return build_lm(LMConfig(dim=32, n_layers=2, n_heads=2, n_codebooks=k, card=card, text_vocab=20))


def test_codeclm_prefill_and_step_match_forward() -> None:
    model = _tiny_lm().eval()
    text, mask = pad_text([[1, 2, 3, 4], [5, 6]])
    audio = torch.randint(0, 16, (2, 3, 7))
    full = model(text, mask, audio)  # [B, K, S, V]
    logits, cache = model.prefill(text, mask, audio[:, :, :4])
    assert torch.allclose(logits, full[:, :, 4], atol=1e-5)
    for s in range(4, 6):
        logits = model.step(audio[:, :, s], cache)
        assert torch.allclose(logits, full[:, :, s + 1], atol=1e-5)


def test_filter_top_k_and_top_p() -> None:
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    assert torch.isinf(filter_logits(logits, top_k=2)).tolist() == [[False, False, True, True]]
    assert torch.isinf(filter_logits(logits, top_p=0.7)).tolist() == [[False, False, True, True]]
    assert torch.isinf(filter_logits(logits, top_p=0.01)).tolist() == [[False, True, True, True]]
    allowed = torch.tensor([False, True, True, True])
    assert int(sample(logits, SamplingConfig(temperature=0), allowed=allowed)) == 1


def test_sampling_seeded_and_temperature() -> None:
    logits = torch.randn(64, 30)
    cfg = SamplingConfig(temperature=1.0, top_k=0, top_p=1.0)
    a = sample(logits, cfg, torch.Generator().manual_seed(3))
    b = sample(logits, cfg, torch.Generator().manual_seed(3))
    c = sample(logits, cfg, torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)
    cold = sample(logits, SamplingConfig(temperature=1e-4, top_k=0, top_p=1.0), torch.Generator().manual_seed(3))
    assert torch.equal(cold, logits.argmax(-1))


def test_repetition_aware_breaks_loops() -> None:
    # token 0 dominates; with a history full of 0s every draw of 0 is redrawn from the full distribution
    logits = torch.tensor([[5.0, 0.0, 0.0, 0.0]]).repeat(400, 1)
    cfg = SamplingConfig(temperature=1.0, top_k=1, top_p=1.0, rep_window=10, rep_threshold=0.5)
    g = torch.Generator().manual_seed(0)
    plain = sample(logits, cfg, g)
    assert (plain == 0).all()
    looped = repetition_aware_sample(logits, [[0] * 10] * 400, cfg, g)
    fresh = repetition_aware_sample(logits, [[1] * 10] * 400, cfg, g)
    assert (fresh == 0).all()
    assert (looped != 0).sum() > 5  # redrawn: p(not 0) = 3 / (e^5 + 3) ~ 2 %


def test_generate_reproducible_stops_and_caps() -> None:
    model = _tiny_lm()
    vocab = AudioVocab(16, 4)
    prompt = torch.randint(0, 16, (3, 5))
    prefix, forced = infill_context(prompt, [(5, 5)], vocab)
    reqs = [GenRequest([1, 2, 3], prefix, forced, max_frames=12), GenRequest([4, 5], prefix[:, 2:], forced, 7)]
    cfg = SamplingConfig(temperature=1.0)
    a = generate(model, reqs, vocab, cfg, torch.Generator().manual_seed(0))
    b = generate(model, reqs, vocab, cfg, torch.Generator().manual_seed(0))
    for ra, rb, req in zip(a, b, reqs):
        assert torch.equal(ra.frames, rb.frames)
        # an untrained model rarely says EOG: the cap ends it, and the frame budget is respected
        assert ra.generated <= req.max_frames
        assert ra.frames[0, -1] == vocab.eog and (ra.frames[:, -1] == vocab.eog).all()
        codes, spans = unmask(ra.frames, vocab)
        gen = codes[:, spans[0][0] : spans[0][1]]
        assert gen.shape[1] == ra.generated and (gen >= 0).all() and (gen < 16).all()
        assert torch.equal(ra.frames[:, : req.prefix.shape[1]], req.prefix)


def test_generate_stops_at_eog() -> None:
    model = _tiny_lm()
    vocab = AudioVocab(16, 4)
    # a head that always says EOG in codebook 0: generation must stop right after the prompt
    bias = torch.zeros(3 * vocab.size)
    bias[vocab.eog] = 100.0
    model.head = torch.nn.Linear(32, 3 * vocab.size)
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.copy_(bias)
    prefix, _ = infill_context(torch.randint(0, 16, (3, 4)), [(4, 4)], vocab)
    res = generate(model, [GenRequest([1], prefix, [], 50)], vocab, SamplingConfig(), torch.Generator())[0]
    assert res.generated == 0 and not res.hit_cap
    # a length floor holds the stop token back for exactly that many frames
    res = generate(model, [GenRequest([1], prefix, [], 50, min_frames=7)], vocab, SamplingConfig(),
                   torch.Generator())[0]
    assert res.generated == 7 and not res.hit_cap and res.frames[0, -1] == vocab.eog


def test_losses_fall_on_one_batch() -> None:
    from speechlm.lm.data import Utt, collate_valle, collate_voicecraft

    torch.manual_seed(0)
    import numpy as np

    utts = [Utt(f"u{i}", np.random.randint(0, 16, (3, 12)).astype(np.int16), np.array([7, 8, 9], np.int32),
                "en", "s", "train") for i in range(4)]
    for layout in ("voicecraft", "valle"):
        cfg = LMConfig(layout=layout, dim=32, n_layers=1, n_heads=2, n_codebooks=3, card=16, text_vocab=300,
                       langs=("en",))
        model = build_lm(cfg)
        opt = torch.optim.Adam(model.parameters(), 3e-3)
        losses = []
        for _ in range(4):
            if layout == "voicecraft":
                batch = collate_voicecraft(utts, 3, cfg.vocab, cfg.langs, 250, 0.5, 2)
                out = voicecraft_loss(model, batch, cfg.weights(3), cfg.vocab.pad)
            else:
                torch.manual_seed(1)
                batch = collate_valle(utts, 3, cfg.vocab, cfg.langs, 250)
                out = valle_loss(model, batch, cfg.vocab.pad, cfg.vocab.eog, stage=1)
            opt.zero_grad()
            out["lm/loss"].backward()
            opt.step()
            losses.append(float(out["lm/loss"].detach()))
        assert losses[-1] < losses[0], (layout, losses)
        assert isinstance(batch, LMBatch)


def test_valle_generation_shapes() -> None:
    torch.manual_seed(0)
    cfg = LMConfig(layout="valle", dim=32, n_layers=1, n_heads=2, n_codebooks=3, card=16, text_vocab=20)
    model = build_lm(cfg)
    codes, hit = generate_valle(model, [1, 2, 3], torch.randint(0, 16, (3, 4)), cfg.vocab, SamplingConfig(),
                                max_frames=9, generator=torch.Generator().manual_seed(0))
    assert codes.shape[0] == 3 and codes.shape[1] <= 9 and (codes < 16).all()


def test_max_frames_grows_with_phones() -> None:
    assert max_frames_for(10, 5.0) < max_frames_for(20, 5.0)


def test_undelay_of_generated_is_consistent() -> None:
    # the column view of a generated sequence undelays back to the frames
    from speechlm.lm.delay import delay

    frames = torch.randint(0, 16, (3, 6))
    assert torch.equal(undelay(delay(frames, 17)), frames)


@pytest.mark.parametrize("bad", [{"layout": "x"}, {"n_codebooks": 0}])
def test_bad_config(bad) -> None:
    with pytest.raises(ValueError):
        LMConfig(**bad)


def test_generate_until_stop_redraws_only_rows_at_the_cap(monkeypatch) -> None:
    """Rows that ran to their cap are drawn again (batched, only those rows) until one stops or retries run out."""
    import speechlm.lm.generate as g

    calls: list[list[int]] = []
    # request i stops on its draw number stops_at[i] (0 = first); request 2 never stops
    stops_at = {0: 0, 1: 1, 2: 99}
    draws = {0: 0, 1: 0, 2: 0}

    def fake_generate(model, requests, vocab, cfg, generator=None):
        calls.append([r.max_frames for r in requests])
        out = []
        for r in requests:
            i = r.max_frames
            hit = draws[i] < stops_at[i]
            draws[i] += 1
            out.append(g.GenResult(torch.full((1, 1), draws[i]), 1, hit))
        return out

    monkeypatch.setattr(g, "generate", fake_generate)
    reqs = [g.GenRequest([1], torch.zeros(1, 1, dtype=torch.long), [], max_frames=i) for i in range(3)]
    res = g.generate_until_stop(None, reqs, None, None, None, retries=2)
    assert calls == [[0, 1, 2], [1, 2], [2]]  # the stopped rows are not redrawn
    assert [r.hit_cap for r in res] == [False, False, True]
    assert [int(r.frames[0, 0]) for r in res] == [1, 2, 3]  # each row keeps its latest draw
    calls.clear()
    g.generate_until_stop(None, reqs, None, None, None, retries=0)
    assert len(calls) == 1


def test_generation_keeps_each_codebook_in_its_own_range() -> None:
    """Streams of different sizes (a source-filter codec: f0 128, gain 32, ...): every sampled code, in both
    layouts, lies below its own codebook's size, though an untrained model spreads its mass over all 16."""
    torch.manual_seed(0)
    cards = (5, 3, 16)
    vocab = AudioVocab(16, 4, cards)
    assert vocab.code_mask(1).sum() == 3 and not vocab.code_mask(1)[vocab.eog]
    prefix, forced = infill_context(torch.stack([torch.randint(0, c, (6,)) for c in cards]), [(6, 6)], vocab)
    res = generate(_tiny_lm(), [GenRequest([1, 2], prefix, forced, max_frames=30, min_frames=20)], vocab,
                   SamplingConfig(temperature=1.5), torch.Generator().manual_seed(0))[0]
    codes, spans = unmask(res.frames, vocab)
    gen = codes[:, spans[0][0] : spans[0][1]]
    assert gen.shape[1] > 5
    for k, c in enumerate(cards):
        assert int(gen[k].max()) < c
    assert int(gen[2].max()) >= 5  # the widest codebook is not held to the narrow ones' range
    cfg = LMConfig(layout="valle", dim=32, n_layers=1, n_heads=2, n_codebooks=3, card=16, text_vocab=20, cards=cards)
    codes, _ = generate_valle(build_lm(cfg), [1, 2, 3], torch.stack([torch.randint(0, c, (4,)) for c in cards]),
                              cfg.vocab, SamplingConfig(temperature=1.5), max_frames=20,
                              generator=torch.Generator().manual_seed(0), min_frames=10)
    assert codes.shape[1] >= 10
    for k, c in enumerate(cards):
        assert int(codes[k].max()) < c
    with pytest.raises(ValueError):
        LMConfig(n_codebooks=3, card=16, cards=(5, 3))
