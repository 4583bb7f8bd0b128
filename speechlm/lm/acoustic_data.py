"""Training data of the acoustic model: an aligned manifest -> token ids, frames per token and codec-rate frames.

Input: a manifest whose rows carry ``tags.tts_tokens`` and ``tags.durations_s`` (one duration per token, e.g.
:func:`speechlm.data.piper_corpus.build_piper_corpus`). Each utterance is analysed like the source-filter codec
analyses audio (WORLD every 5 ms, averaged to 20-ms frames: :func:`speechlm.tokenizers.source_filter.world`;
or kept at ``sub_frames`` = 2 or 4 frames per 20-ms codec frame), and the token durations become whole codec
frames by rounding their cumulative ends (so they sum to the frame count).

:func:`extract_features` writes one ``.npz`` cache (no pickles): ``feat [sum T * S, F]`` (``[mcep | lf0 | vuv |
bap]``, log-F0 interpolated through unvoiced frames; ``S`` = ``sub_frames``), ``ids``/``dur`` ``[sum N]``
(``dur`` in codec frames), per-utterance lengths and ``sub_frames``; ``spk [U]`` each utterance's speaker, an
index into the ``speakers`` of its JSON ``meta`` (with ``speaker_langs``: each speaker's language).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from speechlm.errors import SpeechLMError
from speechlm.tokenizers.source_filter.features import features_from_frames

FRAME_RATE = 50.0
# WORLD's F0 analysis of features made before a cache recorded its own (DIO at WORLD's voicing threshold)
DEFAULT_ANALYSIS = {"f0_tracker": "dio", "dio_threshold": 0.1}


def analysis_settings(analysis: dict | None) -> dict:
    """A recorded (or requested) F0 analysis, partial or None -> every setting (:data:`DEFAULT_ANALYSIS` fills)."""
    return {**DEFAULT_ANALYSIS, **(analysis or {})}


def frame_durations(seconds: np.ndarray, n_frames: int, rate: float = FRAME_RATE) -> np.ndarray:
    """Seconds per token ``[N]`` -> whole frames per token ``[N]`` summing to ``n_frames`` (cumulative rounding;
    the last token absorbs the difference)."""
    ends = np.round(np.cumsum(seconds) * rate).astype(np.int64)
    ends = np.minimum(ends, n_frames)
    ends[-1] = n_frames
    return np.diff(np.concatenate([[0], ends]))


def frame_features(wav16: np.ndarray, sub_frames: int = 1, analysis: dict | None = None) -> np.ndarray:
    """Mono audio at 16 kHz -> ``[T * sub_frames, F]`` features, ``T`` codec frames (module docstring).

    ``analysis``: the F0 analysis, ``{"f0_tracker": "dio" | "harvest", "dio_threshold": float}`` (default
    :data:`DEFAULT_ANALYSIS`); a model's prompts must be analysed as its training data was."""
    from speechlm.tokenizers.source_filter.world import analyze, pad_frames, to_token_rate

    hop = 4  # analysis frames per codec frame
    if sub_frames not in (1, 2, 4):
        raise SpeechLMError(f"sub_frames must be 1, 2 or 4, got {sub_frames}")
    a = analysis_settings(analysis)
    fr = analyze(wav16, f0_tracker=a["f0_tracker"], dio_threshold=float(a["dio_threshold"]))
    fr = pad_frames(fr, -(-len(fr) // hop) * hop)  # whole codec frames
    if sub_frames < hop:
        fr = to_token_rate(fr, hop // sub_frames)
    return features_from_frames(fr.f0, fr.mcep, fr.bap)


def _one(args: tuple[str, list[str], list[float], int, dict]) -> tuple[np.ndarray, np.ndarray] | None:
    from speechlm.audio.io import load_audio

    path, tokens, secs, sub, analysis = args
    if len(secs) != len(tokens):
        return None
    wav, _ = load_audio(path, sr=16000)
    feat = frame_features(np.ascontiguousarray(wav[0], np.float64), sub, analysis)
    return feat, frame_durations(np.asarray(secs, np.float64), len(feat) // sub)


def extract_features(manifests: list[str | os.PathLike], out: str | os.PathLike, workers: int = 1,
                     progress: bool = True, sub_frames: int = 1, analysis: dict | None = None) -> Path:
    """Analyse every aligned row of ``manifests`` into one cache file ``out`` (``.npz``); returns its path.
    ``analysis``: as :func:`frame_features` takes it; recorded in the cache (and so in a model trained on it)."""
    from multiprocessing import Pool

    from tqdm import tqdm

    from speechlm.data.manifest import read_manifest
    from speechlm.text.symbols import default_symbols
    from speechlm.text.tts_input import token_ids
    from speechlm.tokenizers.source_filter.world import F0_TRACKERS

    analysis = analysis_settings(analysis)
    if analysis["f0_tracker"] not in F0_TRACKERS or not 0 < float(analysis["dio_threshold"]) < 1:
        raise SpeechLMError(f"bad F0 analysis {analysis}: f0_tracker one of {F0_TRACKERS}, dio_threshold in (0, 1)")
    sym = default_symbols()
    jobs, ids, who = [], [], []
    speaker_langs: dict[str, str] = {}
    for m in manifests:
        for u in read_manifest(m):
            tags = u.tags or {}
            if "tts_tokens" not in tags or "durations_s" not in tags:
                continue
            jobs.append((str(u.audio_path(Path(m).parent)), tags["tts_tokens"], tags["durations_s"], sub_frames,
                         analysis))
            ids.append(token_ids(tags["tts_tokens"], sym))
            name = u.speaker or "unknown"
            speaker_langs.setdefault(name, u.lang or "")
            who.append(name)
    if not jobs:
        raise SpeechLMError("no aligned utterances (tags.tts_tokens + tags.durations_s) in the manifests")
    speakers = sorted(speaker_langs)
    feats, durs, toks, spk = [], [], [], []
    with Pool(workers) as pool:
        for res, tid, name in zip(tqdm(pool.imap(_one, jobs, chunksize=4), total=len(jobs), desc="features",
                                       disable=not progress), ids, who):
            if res is None:
                continue
            feats.append(res[0])
            durs.append(res[1])
            toks.append(np.asarray(tid, np.int64))
            spk.append(speakers.index(name))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".partial.npz")
    np.savez(tmp, feat=np.concatenate(feats), ids=np.concatenate(toks), dur=np.concatenate(durs),
             feat_len=np.array([len(f) for f in feats]), tok_len=np.array([len(t) for t in toks]),
             sub_frames=np.array(sub_frames), spk=np.asarray(spk, np.int64),
             meta=np.frombuffer(json.dumps({"manifests": [str(m) for m in manifests], "analysis": analysis,
                                            "speakers": speakers, "speaker_langs": speaker_langs}).encode(),
                                np.uint8))
    os.replace(tmp, out)
    return out


@dataclass
class Utt:
    ids: np.ndarray  # [N] int64
    dur: np.ndarray  # [N] int64 codec frames
    feat: np.ndarray  # [T * sub_frames, F] float32 (raw)
    pitch: np.ndarray  # [N] token mean of normalised lf0 over voiced frames (0 where none)
    energy: np.ndarray  # [N] token mean of normalised c0
    speaker: int = 0  # index into AcousticDataset.speakers


class AcousticDataset:
    """The cache as utterances, with normalisation statistics (``mean``/``std`` ``[F]``; vuv left as 0/1).

    ``stats``: ``(mean, std)`` to normalise with instead of the cache's own (fine-tuning a model keeps the
    statistics it was trained with)."""

    def __init__(self, path: str | os.PathLike, n_mcep: int = 40,
                 stats: tuple[np.ndarray, np.ndarray] | None = None) -> None:
        with np.load(path, allow_pickle=False) as z:
            feat, ids, dur = z["feat"], z["ids"], z["dur"]
            fl, tl = z["feat_len"], z["tok_len"]
            self.sub_frames = int(z["sub_frames"]) if "sub_frames" in z.files else 1
            meta = json.loads(z["meta"].tobytes().decode()) if "meta" in z.files else {}
            spk = z["spk"] if "spk" in z.files else np.zeros(len(fl), np.int64)
        self.analysis: dict = analysis_settings(meta.get("analysis"))  # how the features were analysed
        # the speakers (caches made before they were recorded: one, unnamed) and each one's language
        self.speakers: list[str] = list(meta.get("speakers") or [])
        self.speaker_langs: dict[str, str] = dict(meta.get("speaker_langs") or {})
        m = n_mcep
        if stats is not None:
            self.mean, self.std = (np.asarray(x, dtype=np.float32).copy() for x in stats)
        else:
            self.mean = feat.mean(0)
            self.std = feat.std(0) + 1e-5
            voiced = feat[:, m + 1] > 0.5
            self.mean[m] = feat[voiced, m].mean()
            self.std[m] = feat[voiced, m].std() + 1e-5
            self.mean[m + 1], self.std[m + 1] = 0.0, 1.0
        norm = (feat - self.mean) / self.std
        self.utts: list[Utt] = []
        fo = np.concatenate([[0], np.cumsum(fl)])
        to = np.concatenate([[0], np.cumsum(tl)])
        for i in range(len(fl)):
            f, d = feat[fo[i] : fo[i + 1]], dur[to[i] : to[i + 1]]
            nf = norm[fo[i] : fo[i + 1]]
            pitch, energy = token_targets(nf, f[:, m + 1] > 0.5, d, self.sub_frames, m)
            self.utts.append(Utt(ids[to[i] : to[i + 1]], d, f, pitch, energy, int(spk[i])))

    def __len__(self) -> int:
        return len(self.utts)


def token_targets(feat_norm: np.ndarray, voiced: np.ndarray, dur: np.ndarray, sub: int, n_mcep: int
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Normalised features ``[T * S, F]``, voicing ``[T * S]`` (bool) and codec frames per token ``[N]`` -> the
    token pitch and energy targets ``[N]`` (float32): mean normalised log-F0 over the token's voiced frames (0
    where none), mean normalised c0."""
    owner = np.repeat(np.arange(len(dur)), dur * sub)
    v = voiced.astype(np.float64)
    cnt_v = np.bincount(owner, weights=v, minlength=len(dur))
    pitch = np.bincount(owner, weights=feat_norm[:, n_mcep] * v, minlength=len(dur)) / np.maximum(cnt_v, 1)
    cnt = np.bincount(owner, minlength=len(dur))
    energy = np.bincount(owner, weights=feat_norm[:, 0], minlength=len(dur)) / np.maximum(cnt, 1)
    return pitch.astype(np.float32), energy.astype(np.float32)


def collate(utts: list[Utt], mean: np.ndarray, std: np.ndarray):
    """Utterances -> padded tensors (ids, dur, pitch, energy ``[B, N]``; target features ``[B, T, F]``;
    speakers ``[B]``)."""
    import torch

    n, t = max(len(u.ids) for u in utts), max(len(u.feat) for u in utts)
    f = utts[0].feat.shape[1]
    ids = torch.zeros(len(utts), n, dtype=torch.long)
    dur = torch.zeros(len(utts), n, dtype=torch.long)
    pitch = torch.zeros(len(utts), n)
    energy = torch.zeros(len(utts), n)
    feat = torch.zeros(len(utts), t, f)
    for b, u in enumerate(utts):
        ids[b, : len(u.ids)] = torch.from_numpy(u.ids)
        dur[b, : len(u.dur)] = torch.from_numpy(u.dur)
        pitch[b, : len(u.pitch)] = torch.from_numpy(u.pitch)
        energy[b, : len(u.energy)] = torch.from_numpy(u.energy)
        feat[b, : len(u.feat)] = torch.from_numpy((u.feat - mean) / std)
    return ids, dur, pitch, energy, feat, torch.tensor([u.speaker for u in utts], dtype=torch.long)
