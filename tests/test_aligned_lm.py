"""The aligned autoregressive codec LM (speechlm.lm.aligned): alignment, KV-cache generation against the full
forward pass, a tiny overfit, checkpoints, the TTS object and the CLI's refusals. Tiny models only."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from speechlm.lm.acoustic import AcousticConfig
from speechlm.lm.aligned import AlignedConfig, Guide, build, frame_alignment, stream_losses
from speechlm.tokenizers.source_filter.quantizer import greedy_pick

CARDS = [128, 32, 32, 1024, 1024]
TINY = {"d_model": 32, "n_layers": 2, "n_heads": 2}


def tiny_model(seed: int = 0, draft: bool = False, draft_kernel: int = 1, copy_bias: bool = False):
    torch.manual_seed(seed)
    nar = AcousticConfig(vocab=20, d_model=16, n_heads=2, enc_layers=1, dec_layers=1, ff_dim=32)
    cfg = AlignedConfig(vocab=20, cardinalities=CARDS, nar_dim=16, draft=draft, draft_kernel=draft_kernel,
                        copy_bias=copy_bias, **TINY)
    return build(cfg, nar).eval()


def guide_for(model, dur: list[int], seed: int = 0) -> Guide:
    g = torch.Generator().manual_seed(seed)
    n = len(dur)
    ids = torch.randint(1, 20, (n,), generator=g)
    guide = model.guide(ids, dur=torch.tensor(dur))
    if model.cfg.draft:
        guide.draft = random_codes(sum(dur), seed + 100)
    return guide


def random_codes(t: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.stack([torch.randint(0, c, (t,), generator=g) for c in CARDS])


def test_frame_alignment_against_a_loop():
    dur = torch.tensor([2, 0, 3, 1])
    owner, since, until = frame_alignment(dur, prompt_len=2)
    exp_owner, exp_since, exp_until = [-1, -1], [0, 0], [0, 0]
    for i, d in enumerate(dur.tolist()):
        for j in range(d):
            exp_owner.append(i)
            exp_since.append(j)
            exp_until.append(d - 1 - j)
    assert owner.tolist() == exp_owner and since.tolist() == exp_since and until.tolist() == exp_until


def test_forward_shapes_and_padding():
    m = tiny_model()
    gs = [guide_for(m, [2, 3, 1]), guide_for(m, [4, 4], seed=1)]
    cond, mask = m.condition(gs, [3, 0])
    assert cond.shape == (2, 9, 32) and mask.sum(1).tolist() == [9, 8]
    codes = torch.stack([random_codes(9), random_codes(9, 1)])
    logits = m(cond, codes, mask)
    assert [tuple(lg.shape) for lg in logits] == [(2, 9, c) for c in CARDS]
    # a padded row gives the same logits as that utterance alone
    c1, m1 = m.condition(gs[1:], [0])
    alone = m(c1, codes[1:, :, :8], m1)
    assert torch.allclose(alone[3][0], logits[3][1, :8], atol=1e-5)


@pytest.mark.parametrize("prompt_len,draft,kernel,copy", [(0, False, 1, False), (5, False, 1, False),
                                                          (5, True, 1, False), (5, True, 5, True)])
def test_kv_cache_generation_equals_the_full_forward(prompt_len, draft, kernel, copy):
    m = tiny_model(draft=draft, draft_kernel=kernel, copy_bias=copy)
    g = guide_for(m, [3, 1, 0, 4, 2])
    prompt = random_codes(prompt_len, 7) if prompt_len else None
    out = m.generate(g, prompt)  # greedy
    assert out.shape == (len(CARDS), int(g.dur.sum()))  # exactly the frames the durations say
    full = out if prompt is None else torch.cat([prompt, out], 1)
    cond, mask = m.condition([g], [prompt_len])
    with torch.no_grad():
        logits = m(cond, full[None], mask, draft=m.draft_frames([g], [prompt_len], cond.shape[1]) if copy else None)
    for k, lg in enumerate(logits):
        assert torch.equal(greedy_pick(lg[0, prompt_len:], k == m.cfg.voicing_stream), out[k])
    # sampling with a seed reproduces itself; a different seed differs
    from speechlm.lm.sampling import SamplingConfig

    cfg = SamplingConfig(temperature=1.0, top_k=0, top_p=1.0)
    a, b = m.generate(g, prompt, cfg, seed=3), m.generate(g, prompt, cfg, seed=3)
    assert torch.equal(a, b) and not torch.equal(a, m.generate(g, prompt, cfg, seed=4))


def test_draft_conditions_target_frames_only_and_is_required():
    m = tiny_model(draft=True)
    g = guide_for(m, [2, 3])
    cond, _ = m.condition([g], [4])
    other = Guide(g.ids, g.dur, g.pitch, g.energy, g.states, random_codes(5, 9))
    cond2, _ = m.condition([other], [4])
    assert torch.equal(cond[0, :4], cond2[0, :4])  # prompt frames carry no draft
    assert not torch.allclose(cond[0, 4:], cond2[0, 4:])  # every target frame hears its draft
    with pytest.raises(ValueError, match="draft"):
        m.condition([Guide(g.ids, g.dur, g.pitch, g.energy, g.states)], [0])
    with pytest.raises(ValueError, match="draft"):
        m.condition([Guide(g.ids, g.dur, g.pitch, g.energy, g.states, random_codes(4))], [0])
    # the draft is the duration model's decoded frames for the guide: one feature row per frame
    feat = m.nar_features(g)
    assert feat.shape == (5, m.nar.cfg.n_feat) and bool(((feat[:, m.nar.cfg.n_mcep + 1] >= 0)
                                                         & (feat[:, m.nar.cfg.n_mcep + 1] <= 1)).all())


def test_the_copy_bonus_lifts_the_drafts_codes_only():
    m = tiny_model(draft=True, copy_bias=True)
    g = guide_for(m, [2, 3])
    cond, mask = m.condition([g], [2])
    codes = random_codes(7, 3)[None]
    draft = m.draft_frames([g], [2], 7)
    assert (draft[0, :, :2] == -1).all() and torch.equal(draft[0, :, 2:], g.draft)
    with torch.no_grad():
        with_bonus, without = m(cond, codes, mask, draft=draft), m(cond, codes, mask)
    for k, (a, b) in enumerate(zip(with_bonus, without)):
        diff = a[0] - b[0]  # [L, card]
        assert torch.allclose(diff[:2], torch.zeros_like(diff[:2]))  # prompt frames: no draft, no bonus
        for t in range(2, 7):
            expect = torch.zeros(CARDS[k])
            expect[draft[0, k, t]] = float(m.copy_gain[k])
            assert torch.allclose(diff[t], expect, atol=1e-5)


def test_hidden_previous_frames_do_not_reach_the_output():
    m = tiny_model()
    g = guide_for(m, [3, 3])
    cond, mask = m.condition([g], [0])
    a, b = random_codes(6, 1)[None], random_codes(6, 2)[None]
    keep = torch.ones(1, 6, dtype=torch.bool)
    keep[0, 4] = False  # position 4 does not see frame 3
    b[:, :, :3], b[:, :, 4:] = a[:, :, :3], a[:, :, 4:]  # the two differ in frame 3 only
    with torch.no_grad():
        la, lb = m(cond, a, mask, keep), m(cond, b, mask, keep)
        la_all, lb_all = m(cond, a, mask), m(cond, b, mask)
    # position 4 hears frame 3 only through its input (the causal attention sees inputs up to 4, where the hidden
    # frame would have entered): hidden, the logits of position 4 do not change; kept, they do
    assert torch.allclose(la[3][0, 4], lb[3][0, 4], atol=1e-5)
    assert not torch.allclose(la_all[3][0, 4], lb_all[3][0, 4], atol=1e-5)


def test_greedy_decides_voicing_before_pitch():
    # 40% unvoiced, 60% spread over three pitch bins: voiced, the likeliest bin; a plain argmax says unvoiced
    logits = torch.log(torch.tensor([[0.4, 0.25, 0.2, 0.15], [0.6, 0.2, 0.1, 0.1]]))
    assert greedy_pick(logits).tolist() == [0, 0]
    assert greedy_pick(logits, voicing=True).tolist() == [1, 0]


def test_loss_goes_down_on_a_tiny_overfit():
    m = tiny_model()
    g = guide_for(m, [3, 2, 4, 3])
    codes = random_codes(12, 2)[None]
    cond_args = ([g], [0])
    opt = torch.optim.Adam([p for n, p in m.named_parameters() if not n.startswith("nar.")], lr=3e-3)
    m.train()
    losses = []
    for _ in range(30):
        cond, mask = m.condition(*cond_args)
        loss = stream_losses(m(cond, codes, mask), codes, mask.float()).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.5 * losses[0]
    assert all(p.grad is None for p in m.nar.parameters())  # the duration model stays frozen


def write_cache(path, n_utts: int = 6, seed: int = 0) -> None:
    """A tiny synthetic feature cache in the format of speechlm.lm.acoustic_data (raw parameters)."""
    from speechlm.text.symbols import default_symbols
    from speechlm.text.tts_input import vocab_size

    rng = np.random.default_rng(seed)
    feats, ids, durs = [], [], []
    for _ in range(n_utts):
        n = int(rng.integers(5, 9))
        d = rng.integers(1, 6, n)
        t = int(d.sum())
        f = np.zeros((t, 48), np.float32)
        f[:, 0] = rng.normal(-4, 1, t)
        f[:, 1:40] = rng.normal(0, 0.3, (t, 39))
        f[:, 40] = np.log(rng.uniform(90, 200, t))
        f[:, 41] = (rng.random(t) > 0.3).astype(np.float32)
        f[:, 42:] = -rng.uniform(0, 30, (t, 6))
        feats.append(f)
        ids.append(rng.integers(1, vocab_size(default_symbols()), n))
        durs.append(d)
    np.savez(path, feat=np.concatenate(feats), ids=np.concatenate(ids), dur=np.concatenate(durs),
             feat_len=np.array([len(f) for f in feats]), tok_len=np.array([len(i) for i in ids]),
             sub_frames=np.array(1))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from speechlm.lm.aligned_train import AlignedTrainConfig, train_aligned

    root = tmp_path_factory.mktemp("aligned")
    write_cache(root / "feat.npz")
    cfg = AlignedTrainConfig(steps=3, batch_frames=200, warmup=1, save_every=3, log_every=1, model=dict(TINY))
    train_aligned(root / "feat.npz", root / "run", cfg, progress=False)
    return root


def test_checkpoint_round_trip_and_resume(run):
    from speechlm.lm.aligned import load_aligned
    from speechlm.lm.aligned_train import AlignedTrainConfig, train_aligned

    a = load_aligned(run / "run")
    assert a.path.name == "step_00000003" and a.meta["extra"]["kind"] == "aligned_lm"
    assert (run / "run" / "codes.npz").is_file()
    b = load_aligned(a.path)
    for k, v in a.model.state_dict().items():
        assert torch.equal(v, b.model.state_dict()[k]), k
    assert a.model.cfg.cardinalities == [128, 32, 32] + [1024] * (len(a.model.cfg.cardinalities) - 3)
    # resuming continues from step 3 with the same duration model
    cfg = AlignedTrainConfig(steps=4, batch_frames=200, warmup=1, save_every=4, log_every=1, model=dict(TINY))
    last = train_aligned(run / "feat.npz", run / "run", cfg, progress=False)
    assert last.name == "step_00000004"
    c = load_aligned(last)
    assert torch.equal(c.model.state_dict()["nar.embed.weight"], a.model.state_dict()["nar.embed.weight"])


def test_a_draft_conditioned_run_trains_caches_its_drafts_and_speaks(tmp_path):
    from speechlm.lm.aligned import load_aligned
    from speechlm.lm.aligned_train import AlignedTrainConfig, train_aligned
    from speechlm.tasks.tts_aligned import AlignedTTS

    write_cache(tmp_path / "feat.npz")
    cfg = AlignedTrainConfig(steps=2, batch_frames=200, warmup=1, save_every=2, log_every=1, prev_drop=0.5,
                             model=dict(TINY, draft=True, draft_kernel=3, copy_bias=True))
    train_aligned(tmp_path / "feat.npz", tmp_path / "run", cfg, progress=False)
    codes = np.load(tmp_path / "run" / "codes.npz")["codes"]
    drafts = np.load(tmp_path / "run" / "drafts.npz")["codes"]
    assert drafts.shape == codes.shape  # one draft frame per data frame, every stream
    assert load_aligned(tmp_path / "run").model.cfg.draft
    tts = AlignedTTS.load(tmp_path / "run")
    guide = tts.guide(tts.nar.text_chunks("Hello.", "en")[0][1])
    assert guide.draft is not None and guide.draft.shape == (len(codes), int(guide.dur.sum()))
    res = tts.generate("Hello.")
    assert res.frames[0] == int(guide.dur.sum())


def test_tts_generates_the_durations_frames_and_streams_the_same_audio(run):
    from speechlm.tasks.tts import TTSInputError, TTSResult
    from speechlm.tasks.tts_aligned import AlignedTTS

    tts = AlignedTTS.load(run / "run")
    text = "Hello there, friend."
    res = tts.generate(text)
    assert isinstance(res, TTSResult) and res.sample_rate == 16000
    codes, durs = res.extra["codes"][0], res.extra["durations"][0]
    assert codes.shape[1] == int(durs.sum()) == res.frames[0]
    assert len(res.wav) == codes.shape[1] * tts.codec.hop
    # the stream in the offline block size is the generated audio (up to generate's fades at the ends)
    same = np.concatenate(list(tts.stream(text, block_tokens=50)))
    assert len(same) == len(res.wav)
    assert np.allclose(same[400:-400], res.wav[400:-400], atol=1e-5)
    # a prompt in context: codes of the right streams are kept (at most 3 s); wrong ones refused
    prompt = torch.from_numpy(codes[:, :5])
    assert tts.generate(text, prompt=prompt).frames == res.frames
    # a recorded prompt is encoded at the streams the model predicts (the codec's top rate has one more)
    assert tts.generate(text, prompt=res.wav, prompt_sr=16000).frames == res.frames
    with pytest.raises(TTSInputError):
        tts.generate(text, prompt=prompt[:2])
    with pytest.raises(TTSInputError):
        tts.generate("   ")
    with pytest.raises(TTSInputError):
        tts.generate(text, temperature=-1.0)


def test_load_refuses_other_checkpoints(tmp_path):
    from speechlm.errors import CheckpointError
    from speechlm.lm.aligned import load_aligned

    with pytest.raises(CheckpointError):
        load_aligned("tts_duration")  # an acoustic model, not an aligned LM
    with pytest.raises(CheckpointError):
        load_aligned(tmp_path)


def test_cli_refuses_bad_input_in_one_line(tmp_path, capsys):
    from speechlm.cli import main

    bad = tmp_path / "bad.npz"
    np.savez(bad, x=np.zeros(3))
    cases = [
        [str(tmp_path / "missing.npz"), "--out", str(tmp_path / "r")],
        [str(bad), "--out", str(tmp_path / "r"), "--steps", "0"],
        [str(bad), "--out", str(tmp_path / "r")],
    ]
    for args in cases:
        assert main(["acoustic", "train-lm", *args]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("speechlm: error:") and "\n" not in err
    for args in ([str(bad), "--out", str(tmp_path / "r"), "--prev-drop", "1.5"],
                 [str(bad), "--out", str(tmp_path / "r"), "--draft", "--draft-kernel", "4"]):
        assert main(["acoustic", "train-lm", *args]) == 2
        assert "must be" in capsys.readouterr().err


def test_speechlm_tts_speaks_with_an_aligned_run_and_edit_refuses_it(run, tmp_path, capsys):
    from speechlm.audio.io import load_audio
    from speechlm.cli import main
    from speechlm.tasks.tts import tts_kind

    assert tts_kind(run / "run") == "aligned" and tts_kind(None) == "acoustic"
    out = tmp_path / "out.wav"
    assert main(["tts", "Hello there.", "-o", str(out), "--model", str(run / "run"), "--no-sign"]) == 0
    wav, sr = load_audio(out)
    assert sr == 16000 and wav.shape[1] > 0
    assert main(["tts", "Hello.", "-o", str(tmp_path / "x.wav"), "--model", str(run / "run"), "--via-tokens"]) == 2
    assert "--via-tokens" in capsys.readouterr().err
    rec = tmp_path / "rec.wav"
    rec.write_bytes(out.read_bytes())
    assert main(["edit", str(rec), "--transcript", "hello there", "--target", "hello friend", "-o",
                 str(tmp_path / "e.wav"), "--model", str(run / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert "aligned codec LM does not edit" in err and "\n" not in err and not (tmp_path / "e.wav").exists()
