"""The duration-based acoustic model (speechlm.lm.acoustic*): data, training step, inference, DurationTTS."""

from __future__ import annotations

import numpy as np
import torch

from speechlm.lm.acoustic import AcousticConfig, AcousticModel, regulate
from speechlm.lm.acoustic_data import frame_durations
from speechlm.tasks.tts_duration import _split_tokens
from speechlm.tokenizers.source_filter.features import features_from_frames


def test_frame_durations_round_cumulatively_and_sum_to_the_frames():
    secs = np.array([0.013, 0.02, 0.031, 0.0, 0.1, 0.05])
    d = frame_durations(secs, 11)
    assert d.sum() == 11 and (d >= 0).all()
    assert list(np.cumsum(d)[:-1]) == list(np.minimum(np.round(np.cumsum(secs) * 50), 11)[:-1].astype(int))


def test_features_interpolate_log_f0_through_unvoiced_frames():
    f0 = np.array([0, 100, 0, 0, 200, 0], np.float32)
    feat = features_from_frames(f0, np.zeros((6, 40), np.float32), np.zeros((6, 6), np.float32))
    assert feat.shape == (6, 48)
    assert list(feat[:, 41]) == [0, 1, 0, 0, 1, 0]
    assert np.allclose(np.exp(feat[[0, 1, 4, 5], 40]), [100, 100, 200, 200], rtol=1e-5)
    assert 100 < np.exp(feat[2, 40]) < np.exp(feat[3, 40]) < 200


def test_length_regulator_repeats_states_by_duration():
    h = torch.arange(6, dtype=torch.float32).reshape(1, 3, 2).repeat(2, 1, 1)
    out, pad = regulate(h, torch.tensor([[1, 0, 2], [2, 1, 0]]))
    assert out.shape == (2, 3, 2)
    assert out[0, :, 0].tolist() == [0, 4, 4] and out[1, :, 0].tolist() == [0, 0, 2]
    assert not pad.any()
    _, pad = regulate(h, torch.tensor([[1, 0, 0], [2, 1, 0]]))
    assert pad[0].tolist() == [False, True, True]
    g = torch.Generator().manual_seed(0)
    for _ in range(20):  # the batched gather equals repeating each utterance's states, zeros after its end
        h = torch.randn(3, 6, 4, generator=g)
        d = torch.randint(0, 4, (3, 6), generator=g)
        d[1] = 0
        out, pad = regulate(h, d)
        for b in range(3):
            ref = torch.repeat_interleave(h[b], d[b], dim=0)
            assert torch.equal(out[b, : len(ref)], ref) and not out[b, len(ref) :].any()
            assert pad[b].tolist() == [i >= len(ref) for i in range(out.shape[1])]


def test_a_few_steps_fit_one_batch_and_inference_follows_predicted_durations():
    from speechlm.lm.acoustic_data import Utt, collate
    from speechlm.lm.acoustic_train import losses

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    cfg = AcousticConfig(vocab=20, d_model=32, ff_dim=64, ff_kernel=3, enc_layers=1, dec_layers=1, dropout=0.0)
    model = AcousticModel(cfg)
    utts = []
    for n in (5, 7):
        ids = rng.integers(6, 20, n)
        dur = rng.integers(1, 4, n)
        feat = rng.normal(size=(int(dur.sum()), cfg.n_feat)).astype(np.float32)
        feat[:, cfg.n_mcep + 1] = (feat[:, cfg.n_mcep + 1] > 0).astype(np.float32)
        utts.append(Utt(ids, dur, feat, rng.normal(size=n).astype(np.float32), rng.normal(size=n).astype(np.float32)))
    batch = collate(utts, np.zeros(cfg.n_feat, np.float32), np.ones(cfg.n_feat, np.float32))
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    first = None
    for _ in range(60):
        ls = losses(model, batch)
        opt.zero_grad()
        ls["loss"].backward()
        opt.step()
        first = first if first is not None else ls["loss"].item()
    assert ls["loss"].item() < 0.6 * first
    model.eval()
    feat, dur = model.infer(torch.from_numpy(utts[0].ids)[None])
    assert feat.shape == (int(dur.sum()), cfg.n_feat) and dur.shape == (5,)
    assert ((feat[:, cfg.n_mcep + 1] >= 0) & (feat[:, cfg.n_mcep + 1] <= 1)).all()  # voicing is a probability
    slow, _ = model.infer(torch.from_numpy(utts[0].ids)[None], pace=2.0)
    assert len(slow) > len(feat)


def test_long_token_lists_are_cut_at_clauses_then_words():
    words = [["a", "b"]] * 60
    body = []
    for i, w in enumerate(words):
        body += w + ([","] if i == 30 else ["|"])
    tokens = ["<bos>", *body[:-1], ".", "<eos>"]
    pieces = _split_tokens(tokens, 100)
    assert len(pieces) > 1 and all(len(p) <= 100 for p in pieces)
    assert all(p[0] == "<bos>" and p[-1] == "<eos>" and p[-2] in (",", ".") and p[1] != "|" for p in pieces)
    flat = [t for p in pieces for t in p[1:-1] if t not in ("|", ",", ".")]
    assert flat == [t for t in tokens if t not in ("|", ",", ".", "<bos>", "<eos>")]
    assert _split_tokens(tokens[:20], 100) == [tokens[:20]]


def _tiny_cache(path, rng, shift: float = 0.0) -> None:
    feats, ids, durs = [], [], []
    for n in (6, 8, 5, 7):
        d = rng.integers(1, 4, n)
        f = rng.normal(shift, 1.0, size=(int(d.sum()), 48)).astype(np.float32)
        f[:, 41] = (f[:, 41] > shift).astype(np.float32)
        feats.append(f)
        ids.append(rng.integers(6, 40, n))
        durs.append(d)
    np.savez(path, feat=np.concatenate(feats), ids=np.concatenate(ids), dur=np.concatenate(durs),
             feat_len=np.array([len(f) for f in feats]), tok_len=np.array([len(t) for t in ids]))


def test_fine_tuning_starts_from_the_init_model_and_keeps_its_size_and_normalisation(tmp_path):
    import pytest

    from speechlm.errors import CheckpointError
    from speechlm.lm.acoustic_train import AcousticTrainConfig, train_acoustic
    from speechlm.utils.checkpoint import load_checkpoint

    rng = np.random.default_rng(0)
    _tiny_cache(tmp_path / "a.npz", rng)
    _tiny_cache(tmp_path / "b.npz", rng, shift=3.0)  # another "voice": statistics far from a's
    tiny = {"d_model": 16, "ff_dim": 32, "ff_kernel": 3, "enc_layers": 1, "dec_layers": 1}
    a = load_checkpoint(train_acoustic(tmp_path / "a.npz", tmp_path / "run_a", AcousticTrainConfig(
        steps=2, warmup=1, save_every=2, threads=1, model=tiny), progress=False))
    # a near-zero learning rate: the fine-tuned weights must still be the init's
    cfg = AcousticTrainConfig(steps=1, lr=1e-12, warmup=1, save_every=1, threads=1, model={"d_model": 64})
    b = load_checkpoint(train_acoustic(tmp_path / "b.npz", tmp_path / "run_b", cfg, progress=False,
                                       init=tmp_path / "run_a"))
    assert b.config["model"] == a.config["model"]  # the init's architecture, not cfg.model
    assert b.meta["extra"]["init"] == a.model_id and b.meta["extra"]["init_step"] == 2
    for k, v in a.state_dict.items():
        assert torch.allclose(b.state_dict[k].float(), v.float(), atol=1e-6), k
    with pytest.raises(CheckpointError):  # an init that is not an acoustic model
        (tmp_path / "bogus").mkdir()
        train_acoustic(tmp_path / "b.npz", tmp_path / "run_c", cfg, progress=False, init=tmp_path / "bogus")


def test_a_time_budget_ends_training_early_with_a_checkpoint_and_a_gpu_is_asked_for_only_when_there(tmp_path):
    import json

    import pytest

    from speechlm.errors import SpeechLMError
    from speechlm.lm.acoustic_train import AcousticTrainConfig, train_acoustic
    from speechlm.utils.checkpoint import load_checkpoint

    _tiny_cache(tmp_path / "a.npz", np.random.default_rng(0))
    tiny = {"d_model": 16, "ff_dim": 32, "ff_kernel": 3, "enc_layers": 1, "dec_layers": 1}
    cfg = AcousticTrainConfig(steps=100000, warmup=1, save_every=100000, threads=1, max_minutes=1e-5, model=tiny)
    ckpt = load_checkpoint(train_acoustic(tmp_path / "a.npz", tmp_path / "run", cfg, progress=False))
    assert 1 <= ckpt.step < 100
    rows = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == ckpt.step and rows[-1]["lr"] < cfg.lr  # logged where it stopped, annealed
    if not torch.cuda.is_available():
        with pytest.raises(SpeechLMError, match="no GPU"):
            train_acoustic(tmp_path / "a.npz", tmp_path / "run_gpu", AcousticTrainConfig(
                steps=1, threads=1, device="cuda", model=tiny), progress=False)


def test_packed_features_unpack_to_a_cache_within_half_a_level(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    from speechlm.lm.acoustic_data import AcousticDataset

    rng = np.random.default_rng(0)
    _tiny_cache(tmp_path / "a.npz", rng)
    _tiny_cache(tmp_path / "b.npz", rng)
    script = Path(__file__).resolve().parents[1] / "scripts" / "pack_features.py"
    run = [sys.executable, str(script)]
    subprocess.run([*run, "pack", str(tmp_path / "a.npz"), str(tmp_path / "b.npz"), "-o", str(tmp_path / "p.npz"),
                    "--max-utts", "6"], check=True, capture_output=True)
    subprocess.run([*run, "unpack", str(tmp_path / "p.npz"), "-o", str(tmp_path / "u.npz")], check=True,
                   capture_output=True)
    a, b, u = (AcousticDataset(tmp_path / f"{n}.npz") for n in "abu")
    src = a.utts + b.utts[:2]
    assert len(u) == 6
    for x, y in zip(src, u.utts):
        assert np.array_equal(x.ids, y.ids) and np.array_equal(x.dur, y.dur)
        assert np.array_equal(x.feat[:, 41], y.feat[:, 41])  # voicing exact
        span = np.ptp(np.concatenate([z.feat for z in src]), axis=0)
        assert (np.abs(x.feat - y.feat) <= span / 255 * 0.51 + 1e-5).all()
    bad = subprocess.run([*run, "pack", str(tmp_path / "missing.npz"), "-o", str(tmp_path / "x.npz")],
                         capture_output=True, text=True)
    assert bad.returncode != 0 and "no such file" in bad.stderr


def test_a_widened_model_predicts_each_codec_frame_for_every_sub_frame():
    from speechlm.lm.acoustic import widen_sub_frames

    torch.manual_seed(0)
    kw = dict(vocab=20, d_model=32, ff_dim=64, ff_kernel=3, enc_layers=1, dec_layers=1, dropout=0.0)
    narrow = AcousticModel(AcousticConfig(**kw)).eval()
    wide = AcousticModel(AcousticConfig(**kw, sub_frames=4)).eval()
    wide.load_state_dict(widen_sub_frames(narrow.state_dict(), 4))
    ids = torch.tensor([[3, 7, 9, 12, 4]])
    f1, d1 = narrow.infer(ids)
    f4, d4 = wide.infer(ids)
    assert torch.equal(d1, d4) and f4.shape == (4 * f1.shape[0], f1.shape[1])
    assert torch.allclose(f4, f1.repeat_interleave(4, dim=0), atol=1e-5)


def test_five_ms_features_are_the_analysis_frames_the_codec_averages():
    from speechlm.tokenizers.source_filter.world import SAMPLE_RATE

    t = np.arange(int(0.73 * SAMPLE_RATE)) / SAMPLE_RATE
    wav = (0.3 * np.sin(2 * np.pi * 140 * t) * (1 + np.sin(2 * np.pi * 3 * t))).astype(np.float64)
    from speechlm.lm.acoustic_data import frame_features

    f1, f4 = frame_features(wav, 1), frame_features(wav, 4)
    assert f4.shape == (4 * len(f1), 48)
    m = f4[:, :40].reshape(len(f1), 4, 40).mean(1)  # the 20-ms mel-cepstra are the 5-ms ones averaged
    assert np.allclose(m, f1[:, :40], atol=1e-4)
    assert np.abs(np.diff(f4[:, 0])).max() > 0  # and the 5-ms ones keep movement inside a codec frame


def test_the_frame_decoder_synthesises_five_ms_frames_as_they_are_in_any_blocks():
    from speechlm.tokenizers.codec.api import Codec
    from speechlm.tokenizers.source_filter.world import Frames, synthesize

    codec = Codec.load("codec_sf")
    rng = np.random.default_rng(0)
    t = 60  # codec frames
    f0 = np.where(np.arange(4 * t) % 50 < 35, 120 + 20 * np.sin(np.arange(4 * t) / 9), 0).astype(np.float32)
    mcep = (rng.normal(0, 0.05, (4 * t, 40)) + np.r_[-6.0, 1.0, np.zeros(38)]).astype(np.float32)
    bap = np.full((4 * t, 6), -20.0, np.float32)
    fr = Frames(f0, mcep, bap)
    dec = codec.frame_stream_decoder(block_tokens=t + 10, sub_frames=4)
    whole = np.concatenate(list(dec.push(fr)) + list(dec.flush(t * codec.hop)))
    ref = synthesize(f0, mcep, bap)[: t * codec.hop]
    assert len(whole) == t * codec.hop
    assert np.corrcoef(whole[400:-400], ref[400:-400])[0, 1] > 0.99  # one block: WORLD on the frames themselves
    dec = codec.frame_stream_decoder(block_tokens=5, sub_frames=4)
    parts = []
    for i in range(0, 4 * t, 28):  # frames arriving 7 tokens at a time
        parts += list(dec.push(Frames(f0[i : i + 28], mcep[i : i + 28], bap[i : i + 28])))
    blocks = np.concatenate(parts + list(dec.flush(t * codec.hop)))
    assert len(blocks) == t * codec.hop
    from speechlm.audio.features import log_mel  # the synthesiser restarts at block joins: compare spectra

    a, b = log_mel(blocks, 16000).numpy(), log_mel(whole, 16000).numpy()
    assert np.corrcoef(np.ravel(a), np.ravel(b))[0, 1] > 0.85 and np.abs(a - b).mean() < 0.25


def test_the_f0_analysis_travels_from_the_cache_to_the_model_and_its_prompts(tmp_path):
    """A cache records how its F0 was analysed, the model trained on it records the same, and a cache from
    before that record means DIO at WORLD's threshold. A higher DIO threshold voices more of a noisy vowel."""
    import json

    from speechlm.lm.acoustic_api import AcousticTTSModel
    from speechlm.lm.acoustic_data import DEFAULT_ANALYSIS, AcousticDataset, frame_features
    from speechlm.lm.acoustic_train import AcousticTrainConfig, train_acoustic

    rng = np.random.default_rng(0)
    _tiny_cache(tmp_path / "old.npz", rng)
    assert AcousticDataset(tmp_path / "old.npz").analysis == DEFAULT_ANALYSIS
    with np.load(tmp_path / "old.npz") as z:
        arrays = dict(z)
    chosen = {"f0_tracker": "dio", "dio_threshold": 0.3}
    np.savez(tmp_path / "new.npz", **arrays, meta=np.frombuffer(json.dumps({"analysis": chosen}).encode(), np.uint8))
    tiny = {"d_model": 16, "ff_dim": 32, "ff_kernel": 3, "enc_layers": 1, "dec_layers": 1}
    run = train_acoustic(tmp_path / "new.npz", tmp_path / "run", AcousticTrainConfig(
        steps=1, warmup=1, save_every=1, threads=1, model=tiny), progress=False)
    assert AcousticTTSModel.load(run).analysis == chosen

    t = np.arange(16000) / 16000
    vowel = sum(np.sin(2 * np.pi * k * 120 * t) / k for k in range(1, 20))
    wav = 0.1 * vowel / np.abs(vowel).max() + 0.2 * rng.standard_normal(len(t))  # noise above the vowel
    voiced = [frame_features(wav, analysis={"dio_threshold": th})[:, 41].mean() for th in (0.1, 0.3)]
    assert voiced[1] > voiced[0], voiced


def test_acoustic_train_refuses_bad_settings_in_one_line_before_any_work(tmp_path, capsys):
    from speechlm.cli import main

    _tiny_cache(tmp_path / "a.npz", np.random.default_rng(0))
    run = str(tmp_path / "run")
    cases = [["--dropout", "1.0"], ["--layers", "0"], ["--d-model", "7"], ["--batch-frames", "10"],
             ["--max-minutes", "-1"], ["--device", "tpu"]]
    if not torch.cuda.is_available():
        cases.append(["--device", "cuda"])
    for extra in cases:
        assert main(["acoustic", "train", str(tmp_path / "a.npz"), "--out", run, *extra]) == 2, extra
        err = capsys.readouterr().err.strip()
        assert err.startswith("speechlm: error:") and "\n" not in err, err
    assert not (tmp_path / "run" / "checkpoints").exists()
