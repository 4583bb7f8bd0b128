"""Speaker adaptation of the duration model to a voice prompt with its transcript (few-shot voice cloning).

:class:`~speechlm.lm.acoustic_api.VoiceShift` moves the model's voice globally (F0 range, one frequency warp, a
mean equaliser); what it cannot move is how the speaker realises each sound, frame by frame, which is where most
of the speaker lies (docs/experiments/2026-12-05-voice-similarity-ceiling.md). Adaptation learns that from the
prompt itself, as "Neural Voice Cloning with a Few Samples" (Arik et al., 2018) adapts a multi-speaker model:

1. The prompt's transcript -> TTS input tokens; the model predicts their frames, which the voice shift moves
   towards the prompt.
2. Dynamic time warping between those frames and the prompt's (mel-cepstra, 20-ms frames) gives every token its
   frames in the prompt: durations without a forced aligner trained on this voice.
3. The prompt's features are moved into the model's voice by the inverse shift (so step 0 changes nothing), and
   the decoder (and output projection) take a few optimiser steps on them, teacher-forced with those durations
   and the prompt's token pitch and energy. The encoder and the duration/pitch/energy predictors stay frozen: the
   words, rhythm and intonation stay the model's.
4. Generation uses the adapted copy, then the same voice shift (``DurationTTS`` takes its frames only part of
   the way from the shifted original's: ``ADAPT_BLEND``).

What it buys and costs is measured in docs/tts.md ("A voice from a prompt"): the output comes closer to the
prompt's speaker and is heard less clearly (a few seconds of one voice move the decoder's sounds as well as its
voice), so it is asked for, not the default.

Shapes: ``N`` tokens, ``T`` codec frames (20 ms), ``S`` sub-frames per codec frame, ``F`` features
(``[mcep | lf0 | vuv | bap]``).
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import numpy as np
import torch

from speechlm.lm.acoustic_api import AcousticTTSModel, VoiceShift
from speechlm.lm.acoustic_data import token_targets

DTW_MCEP = slice(1, 25)  # mel-cepstra compared by the alignment (not c0: loudness differs between voices)


@dataclass
class AdaptConfig:
    steps: int = 100
    lr: float = 1e-4
    modules: tuple[str, ...] = ("decoder", "dec_norm", "proj")  # what is trained; the rest stays frozen
    seed: int = 0


@dataclass
class Adapted:
    """The adapted model, the prompt's token durations ``[N]`` (codec frames) and the time it took."""

    am: AcousticTTSModel
    durations: np.ndarray
    seconds: float
    losses: list[float]


def codec_rate(feat: np.ndarray, sub: int) -> np.ndarray:
    """Features ``[T * S, F]`` -> ``[T, F]`` (sub-frames averaged)."""
    t = len(feat) // sub
    return feat[: t * sub].reshape(t, sub, feat.shape[1]).mean(1)


def dtw_durations(pred: np.ndarray, target: np.ndarray, pred_dur: np.ndarray) -> np.ndarray:
    """Align predicted frames ``[Tp, D]`` to the prompt's ``[Tt, D]`` (both 20-ms) with DTW; the predicted
    frames' tokens (``pred_dur [N]``, summing to ``Tp``) -> every prompt frame's token -> durations ``[N]``
    summing to ``Tt``. The path runs from first to last frame of both."""
    import librosa

    a = (pred - pred.mean(0)) / (pred.std(0) + 1e-5)
    b = (target - target.mean(0)) / (target.std(0) + 1e-5)
    _, path = librosa.sequence.dtw(X=a.T, Y=b.T, metric="euclidean", backtrack=True)
    path = path[::-1]  # (pred frame, prompt frame), increasing
    owner_pred = np.repeat(np.arange(len(pred_dur)), pred_dur)
    first = np.full(len(target), -1)
    for i, j in path:
        if first[j] < 0:
            first[j] = i
    owner = owner_pred[np.clip(first, 0, len(owner_pred) - 1)]
    return np.bincount(owner, minlength=len(pred_dur)).astype(np.int64)


def adapt(am: AcousticTTSModel, ids: list[int], prompt_feat: np.ndarray, shift: VoiceShift,
          cfg: AdaptConfig | None = None) -> Adapted:
    """A copy of ``am`` adapted to a prompt: its transcript's token ``ids``, its features ``[T * S, F]`` (the
    model's analysis and rate), and ``shift`` (model voice -> prompt voice)."""
    cfg = cfg or AdaptConfig()
    t0 = time.perf_counter()
    torch.manual_seed(cfg.seed)
    sub, m = am.sub_frames, am.config.n_mcep
    n_frames = len(prompt_feat) // sub
    prompt_feat = prompt_feat[: n_frames * sub]
    pred, pred_dur = am.features(ids, shift=shift)
    dur = dtw_durations(codec_rate(pred, sub)[:, DTW_MCEP], codec_rate(prompt_feat, sub)[:, DTW_MCEP], pred_dur)
    back = VoiceShift(shift.target, shift.source, 1.0 / shift.warp)  # prompt voice -> model voice
    target = back.apply(prompt_feat, m)
    voiced = target[:, m + 1] > 0.5
    if voiced.any():  # the recording's level -> the model voice's (the frozen energy predictor speaks at it)
        target[:, 0] += am.voice.mcep_mean[0] - target[voiced, 0].mean()
    mean, std = am.model.feat_mean.numpy(), am.model.feat_std.numpy()
    norm = (target - mean) / std
    voiced = target[:, m + 1] > 0.5
    norm[:, m + 1] = voiced  # the voicing target is 0/1 (a logit is predicted)
    pitch, energy = token_targets(norm, voiced, dur, sub, m)
    model = copy.deepcopy(am.model)
    for p in model.parameters():
        p.requires_grad_(False)
    params = [p for name in cfg.modules for p in model.get_submodule(name).parameters()]
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.Adam(params, lr=cfg.lr)
    x = torch.tensor([ids], dtype=torch.long)
    d = torch.from_numpy(dur)[None]
    pt, et = torch.from_numpy(pitch)[None], torch.from_numpy(energy)[None]
    tgt = torch.from_numpy(norm.astype(np.float32))[None]
    with torch.no_grad():
        h, pad = model.encode(x)  # frozen (and in eval mode): computed once
    model.train()
    losses = []
    for _ in range(cfg.steps):
        y, _ = model.decode(h, pad, d, pt, et)
        y = y[:, : tgt.shape[1]]
        cont = torch.cat([y[..., : m + 1] - tgt[..., : m + 1], y[..., m + 2 :] - tgt[..., m + 2 :]], -1).abs().mean()
        vuv = torch.nn.functional.binary_cross_entropy_with_logits(y[..., m + 1], tgt[..., m + 1])
        loss = cont + 0.1 * vuv
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    out = copy.copy(am)
    out.model = model
    return Adapted(out, dur, time.perf_counter() - t0, losses)
