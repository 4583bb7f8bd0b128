"""A small gender classifier (female/male) for the style tags, trained here on speech we may train on.

Features (:func:`features`, ``[4 + 256]``): voiced-F0 statistics (log median, log 10th and 90th percentiles,
voiced fraction) and the GE2E speaker embedding (resemblyzer's shipped encoder, :mod:`speechlm.eval.speaker`).
Model: logistic regression on standardised features (L2 0.3: the smallest of 0.01-3 with the best accuracy on the
validation voices; fitted with L-BFGS), weights shipped as safetensors +
JSON in ``speechlm/assets/gender_default`` (the project's checkpoint format, :mod:`speechlm.train.checkpoint`).

Training data (:func:`training_clips`), labels from metadata only:
- synthetic voices with a known gender (:mod:`speechlm.data.voices`: espeak-ng variants whose variant file states
  the gender, flite ``slt``/``awb``/``rms``/``kal16``, the festival voices, Piper ``joe``) in en/fr/es/it/de/cs,
  random prosody settings, sentences from :mod:`speechlm.data.sentences`;
- real speech whose speaker is named in the package: asterisk-prompt-fr-armelle (voice actor Armelle Desjardins),
  asterisk-prompt-es-co (July E. Jiménez, per its LEEME), asterisk-prompt-it-menardi (``it_IT_f_Menardi``), all
  female. No trainable real recording with an established male speaker was found (fillets-ng and klettres name
  no speakers), so the real male side is Piper joe (a VITS voice of one real male speaker).
Each clip is augmented with probability 0.7 (noise or music at 0-30 dB SNR, telephone band 300-3400 Hz with
probability 0.25). Validation: the synthetic voices :func:`speechlm.data.voices.is_held_out` marks, never fitted.
Never trained on: asterisk-core-sounds (``en_US_f_Allison``, ``fr_CA_f_June``, ``es_MX_f_Allison``,
``it_IT_m_Carlo``: the held-out evaluation, gender from the folder names), pocketsphinx-testdata, codec2-examples.

Train: ``python -m speechlm.pipeline.gender --out speechlm/assets/gender_default``.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import random
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from speechlm.errors import SpeechLMError
from speechlm.pipeline.tags import pitch_track

log = logging.getLogger(__name__)

SR = 16000
ASSET = Path(__file__).resolve().parents[1] / "assets" / "gender_default"
ASTERISK = Path("/usr/share/asterisk/sounds")
# Trainable real prompts (folder, glob): see the module docstring for how each speaker's gender is known.
REAL_FEMALE = (("fr", "*.gsm"), ("es", "*.gsm"), ("it_IT_f_Menardi", "*.wav"))
# Held-out real voices (asterisk-core-sounds; the folder names state the gender): evaluation only.
HELDOUT_VOICES = {"en_US_f_Allison": "female", "fr_CA_f_June": "female", "es_MX_f_Allison": "female",
                  "it_IT_m_Carlo": "male"}
LANGS = ("en", "fr", "es", "it", "de", "cs")


def resolve_model_dir(name_or_dir: str | os.PathLike | None = None) -> Path:
    """``None``/``"default"``/``"gender_default"`` or a folder -> the classifier folder."""
    from speechlm.utils.checkpoint import resolve_model_dir as resolve

    return resolve(name_or_dir, "gender", "gender_default", "gender classifier")


def features(audio: np.ndarray, sr: int, track: np.ndarray | None = None) -> np.ndarray:
    """``[4 + 256]`` float32: log F0 median / p10 / p90 (0 when unvoiced), voiced fraction, GE2E embedding."""
    from speechlm.audio.io import resample
    from speechlm.eval.speaker import load_embedder

    x = np.asarray(audio, np.float32).reshape(-1)
    if track is None:
        track = pitch_track(x, sr)
    n_frames = max(1, int(x.size / sr / 0.01))
    if track.size >= 5:
        stats = [np.log(np.median(track)), np.log(np.percentile(track, 10)), np.log(np.percentile(track, 90))]
    else:
        stats = [0.0, 0.0, 0.0]
    stats.append(min(1.0, track.size / n_frames))
    emb = load_embedder().embed(resample(x, sr, SR) if sr != SR else x)
    return np.concatenate([np.asarray(stats, np.float32), emb.astype(np.float32)])


class GenderClassifier:
    """Logistic regression on standardised :func:`features`: ``predict_proba(audio, sr) -> P(female)``."""

    def __init__(self, mean: np.ndarray, std: np.ndarray, weight: np.ndarray, bias: float, name: str) -> None:
        self.mean, self.std, self.weight, self.bias, self.name = mean, std, weight, float(bias), name

    @classmethod
    def load(cls, name_or_dir: str | os.PathLike | None = None) -> GenderClassifier:
        from speechlm.utils.checkpoint import load_checkpoint

        ck = load_checkpoint(resolve_model_dir(name_or_dir))
        sd = {k: v.numpy().astype(np.float64) for k, v in ck.state_dict.items()}
        return cls(sd["mean"], sd["std"], sd["weight"], float(sd["bias"][0]), ck.model_id)

    def proba_from_features(self, feats: np.ndarray) -> np.ndarray:
        """``[N, D]`` (or ``[D]``) features -> ``[N]`` (or scalar) P(female)."""
        z = (np.asarray(feats, np.float64) - self.mean) / self.std @ self.weight + self.bias
        return 1.0 / (1.0 + np.exp(-z))

    def predict_proba(self, audio: np.ndarray, sr: int, track: np.ndarray | None = None) -> float:
        """P(female) for mono ``audio [T]`` at ``sr`` (``track``: its :func:`pitch_track`, if already known)."""
        return float(self.proba_from_features(features(audio, sr, track)))


@functools.cache
def _cached(path: str) -> GenderClassifier:
    return GenderClassifier.load(path)


def load_classifier(name_or_dir: str | os.PathLike | None = None) -> GenderClassifier:
    """The classifier (default: the shipped ``gender_default``), loaded once per process."""
    return _cached(str(resolve_model_dir(name_or_dir)))


# ---------------------------------------------------------------------------------------------------- training


def augment(x: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """Noise or music at 0-30 dB SNR with probability 0.7, then telephone band with probability 0.25."""
    from speechlm.pipeline.construct import _telephone, background

    desc = "clean"
    if rng.random() < 0.7:
        kind = str(rng.choice(["music", "effects", "pink", "white", "babble-like"]))
        snr = float(rng.uniform(0.0, 30.0))
        bg = background(kind, x.size, rng)
        x = x + bg * np.float32(np.sqrt(np.mean(x ** 2) / 10 ** (snr / 10)))
        desc = f"{kind}@{snr:.0f}dB"
    if rng.random() < 0.25:
        x = _telephone(x)
        desc += "+telephone"
    return (x / (np.max(np.abs(x)) + 1e-9) * 0.9).astype(np.float32), desc


def training_clips(seed: int, per_lang: int, per_real_voice: int, tmpdir: Path
                   ) -> Iterator[tuple[np.ndarray, str, str, bool]]:
    """Yield ``(audio 16 kHz [T], gender, group, validation)``: synthetic voices (module docstring) then real
    female prompts. ``group`` names the voice; ``validation`` marks the held-out synthetic voices."""
    from speechlm.audio.io import load_audio
    from speechlm.data import synth
    from speechlm.data import voices as V
    from speechlm.data.sentences import SentenceSampler

    rng = random.Random(f"gender:{seed}")
    for lang in LANGS:
        pool = [v for v in V.voices_for(lang) if v.gender in ("female", "male")]
        if not pool:
            continue
        sentences = SentenceSampler(lang, seed)
        by_gender = {g: [v for v in pool if v.gender == g] for g in ("female", "male")}
        for i in range(per_lang):
            g = ("female", "male")[i % 2] if all(by_gender.values()) else pool[0].gender
            engines = sorted({v.engine for v in by_gender[g]})  # engine first: espeak-ng has most voices
            e = rng.choice(engines)
            voice = rng.choice([v for v in by_gender[g] if v.engine == e])
            spk = rng.choice(V.speakers_for(voice))
            job = synth.UttJob(f"g{lang}{i}", sentences.take(1)[0].text, "gender", lang, spk, "train",
                               rng.randrange(1 << 30))
            try:
                synth.render(job, tmpdir / f"{job.id}.wav", 0.0, tmpdir)
            except Exception as exc:  # noqa: BLE001 - skip what an engine cannot say
                log.debug("skip %s: %s", job.id, exc)
                continue
            wav, _ = load_audio(tmpdir / f"{job.id}.wav", sr=SR)
            yield wav[0], voice.gender, voice.key, V.is_held_out(spk)
    for folder, pattern in REAL_FEMALE:
        files = sorted((ASTERISK / folder).glob(pattern))
        for f in random.Random(f"gender-real:{seed}:{folder}").sample(files, min(per_real_voice, len(files))):
            try:
                wav = _read_gsm(f) if f.suffix == ".gsm" else load_audio(f, sr=SR)[0][0]
            except Exception as exc:  # noqa: BLE001
                log.warning("skip %s: %s", f, exc)
                continue
            if wav.size >= SR // 2:
                yield wav, "female", f"asterisk-prompt:{folder}", False


def _read_gsm(path: Path) -> np.ndarray:
    """A raw GSM 06.10 file (8 kHz, as Asterisk stores prompts) -> 16 kHz float32 ``[T]`` through ffmpeg."""
    import subprocess

    cmd = ["ffmpeg", "-nostdin", "-v", "error", "-f", "gsm", "-ar", "8000", "-i", str(path), "-ac", "1", "-ar",
           str(SR), "-f", "f32le", "-"]
    return np.frombuffer(subprocess.run(cmd, capture_output=True, check=True).stdout, np.float32).copy()


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1e-2, w_sample: np.ndarray | None = None
                 ) -> tuple[np.ndarray, float]:
    """L2-regularised logistic regression by L-BFGS: ``x [N, D]`` standardised, ``y [N]`` in {0, 1} ->
    ``(weight [D], bias)``. ``w_sample [N]``: per-sample weights (class balance)."""
    import torch

    X = torch.tensor(x, dtype=torch.float64)
    Y = torch.tensor(y, dtype=torch.float64)
    W = torch.tensor(w_sample if w_sample is not None else np.ones(len(y)), dtype=torch.float64)
    w = torch.zeros(X.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=500, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = (torch.nn.functional.binary_cross_entropy_with_logits(X @ w + b, Y, reduction="none") * W).sum()
        loss = loss / W.sum() + l2 * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach().numpy(), float(b.detach()[0])


def collect(seed: int, per_lang: int, per_real_voice: int) -> dict[str, np.ndarray]:
    """Render, augment and featurise the training clips -> ``{"x" [N, D], "y" [N], "group" [N], "val" [N]}``."""
    rows, labels, groups, val = [], [], [], []
    aug_rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory(prefix="speechlm-gender-") as tmp:
        for wav, g, grp, is_val in training_clips(seed, per_lang, per_real_voice, Path(tmp)):
            x, _ = augment(wav, aug_rng)
            rows.append(features(x, SR))
            labels.append(1.0 if g == "female" else 0.0)
            groups.append(grp)
            val.append(is_val)
    return {"x": np.stack(rows).astype(np.float64), "y": np.array(labels), "group": np.array(groups),
            "val": np.array(val)}


def train(out: str | Path, seed: int = 0, per_lang: int = 100, per_real_voice: int = 30, l2: float = 0.3,
          cache: str | Path | None = None) -> dict[str, Any]:
    """Collect (or read from ``cache``, an ``.npz`` of :func:`collect`), fit, validate and save the classifier to
    ``out``; return the summary."""
    import torch

    from speechlm.train.checkpoint import save_checkpoint

    t0 = time.time()
    if cache is not None and Path(cache).is_file():
        data = dict(np.load(cache))
    else:
        data = collect(seed, per_lang, per_real_voice)
        if cache is not None:
            np.savez(cache, **data)
    X, y, V_, groups = data["x"], data["y"], data["val"].astype(bool), [str(g) for g in data["group"]]
    if len(set(y[~V_])) < 2:
        raise SpeechLMError("gender training data has only one class")
    mean, std = X[~V_].mean(0), X[~V_].std(0) + 1e-6
    Z = (X - mean) / std
    tr = ~V_
    w_cls = np.where(y == 1, 0.5 / max(y[tr].mean(), 1e-9), 0.5 / max(1 - y[tr].mean(), 1e-9))
    weight, bias = fit_logistic(Z[tr], y[tr], l2, w_cls[tr])
    clf = GenderClassifier(mean, std, weight, bias, "gender_default")
    pred = clf.proba_from_features(X) >= 0.5
    acc_train = float(np.mean(pred[tr] == (y[tr] == 1)))
    acc_val = float(np.mean(pred[V_] == (y[V_] == 1))) if V_.any() else float("nan")
    summary = {
        "clips": int(len(y)), "train_clips": int(tr.sum()), "validation_clips": int(V_.sum()),
        "female_fraction": round(float(y.mean()), 3), "voices": len(set(groups)),
        "real_female_clips": int(sum(g.startswith("asterisk-prompt") for g in groups)),
        "validation_voices": sorted({g for g, v in zip(groups, V_) if v}),
        "accuracy_train": round(acc_train, 4), "accuracy_validation": round(acc_val, 4),
        "seconds": round(time.time() - t0, 1),
    }
    sd = {"mean": torch.tensor(mean, dtype=torch.float32), "std": torch.tensor(std, dtype=torch.float32),
          "weight": torch.tensor(weight, dtype=torch.float32), "bias": torch.tensor([bias], dtype=torch.float32)}
    cfg = {"features": "log F0 median/p10/p90, voiced fraction, GE2E (resemblyzer) embedding", "dim": int(X.shape[1]),
           "l2": l2, "seed": seed, "per_lang": per_lang, "per_real_voice": per_real_voice, "labels": "1 = female"}
    save_checkpoint(out, model=sd, config=cfg, step=1, extra={"name": "gender_default"}, data_summary=summary)
    return summary


def main(argv: list[str] | None = None) -> None:
    """``python -m speechlm.pipeline.gender --out DIR [--seed S] [--per-lang N] [--per-real-voice N]``."""
    import torch

    p = argparse.ArgumentParser(description="train the gender classifier of the style tags")
    p.add_argument("--out", default=str(ASSET))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--per-lang", type=int, default=100)
    p.add_argument("--per-real-voice", type=int, default=30)
    p.add_argument("--l2", type=float, default=0.3)
    p.add_argument("--cache", help="an .npz of the featurised clips: written on the first run, read after")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    print(json.dumps(train(a.out, a.seed, a.per_lang, a.per_real_voice, a.l2, a.cache), indent=1))


if __name__ == "__main__":
    main()
