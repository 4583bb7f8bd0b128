"""``speechlm demo``: the main job until a trained model ships.

Synthesises six short real sentences with different offline voices and languages, writes them as 16 kHz WAVs
with a manifest, draws a log-mel spectrogram grid (PNG) and prints a summary table. Takes a few seconds.
"""

from __future__ import annotations

import argparse

from speechlm.cli._common import add_command

# (lang, engine, voice, prosody); a voice that is not installed falls back to espeak-ng for that language.
DEMO_VOICES = (
    ("en", "flite", "slt", (("stretch", 1.0), ("f0x", 1.0))),
    ("en", "festival", "kal_diphone", (("stretch", 1.0),)),
    ("en", "espeak-ng", "en-gb+f3", (("pitch", 50), ("rate", 165))),
    ("de", "espeak-ng", "de+m3", (("pitch", 40), ("rate", 160))),
    ("fr", "espeak-ng", "fr-fr+f2", (("pitch", 60), ("rate", 160))),
    ("it", "festival", "pc_diphone", (("stretch", 1.0),)),
)
MAX_WORDS = 12
# Proverbs and gentle quotations for the demo (fortunes are sometimes edgy); any source if these are absent.
DEMO_SOURCES = (
    "fortunes:en/wisdom",
    "fortunes:de/sprichworte",
    "fillets:fr",
    "fortunes:it/italia",
    "fortunes:es/refranes",
)


def _speakers(seed: int):
    from speechlm.data import voices as V

    out = []
    for lang, engine, name, prosody in DEMO_VOICES:
        vs = {v.name: v for v in V.voices_for(lang) if v.engine == engine}
        if name in vs:
            out.append(V.Speaker(vs[name], tuple((k, float(x)) for k, x in prosody)))
            continue
        fallback = sorted((v for v in V.voices_for(lang) if v.engine == "espeak-ng"), key=lambda v: v.name)
        if fallback:
            out.append(V.Speaker(fallback[seed % len(fallback)], (("pitch", 50.0), ("rate", 160.0))))
    return out


def _cmd_demo(args: argparse.Namespace) -> int:
    import time
    from pathlib import Path
    from tempfile import TemporaryDirectory

    from speechlm.data.manifest import Utterance, write_manifest
    from speechlm.data.sentences import SentenceSampler
    from speechlm.data.synth import UttJob, _seed_int, render
    from speechlm.errors import MissingDependencyError

    t0 = time.time()
    out = Path(args.out)
    speakers = _speakers(args.seed)
    if not speakers:
        raise MissingDependencyError(
            "no speech synthesizer is installed (apt-get install espeak-ng flite festival)"
        )
    samplers: dict[str, SentenceSampler] = {}
    utts = []
    used: set[str] = set()
    with TemporaryDirectory(prefix="speechlm-demo-") as tmp:
        for i, spk in enumerate(speakers):
            lang = spk.voice.lang
            if lang not in samplers:
                samplers[lang] = SentenceSampler(lang, args.seed)
            sent = _pick(samplers[lang], used)
            used.add(sent.text)
            uid = f"demo_{i:02d}_{lang}"
            job = UttJob(uid, sent.text, sent.source, lang, spk, "test", _seed_int(args.seed, uid))
            rec = render(job, out / "wavs" / f"{uid}.wav", 0.0, Path(tmp))
            utts.append(
                Utterance(
                    uid,
                    f"wavs/{uid}.wav",
                    sent.text,
                    lang,
                    spk.id,
                    rec["duration"],
                    "test",
                    tags={"lang": lang, **rec["tags"]},
                )
            )
    write_manifest(out / "manifest.jsonl", utts)
    png = _spectrogram_grid(out, utts)
    print(f"{'#':>2s} {'lang':4s} {'engine':9s} {'voice':22s} {'sec':>5s}  text")
    for i, u in enumerate(utts):
        text = u.text if len(u.text) <= 60 else u.text[:57] + "..."
        print(f"{i:2d} {u.lang:4s} {u.tags['engine']:9s} {u.tags['voice']:22s} {u.duration:5.2f}  {text}")
    print(
        f"\n{len(utts)} utterances, {sum(u.duration for u in utts):.1f} s of audio, "
        f"{len({u.lang for u in utts})} languages, {len({u.speaker for u in utts})} voices, "
        f"in {time.time() - t0:.1f} s"
    )
    print(f"wavs: {out / 'wavs'}\nmanifest: {out / 'manifest.jsonl'}\nspectrograms: {png}")
    return 0


def _pick(sampler, used: set[str]):
    """The sampler's first short sentence from a demo source (or any source), not already used."""
    short = [s for s in sampler.pool if len(s.text.split()) <= MAX_WORDS and s.text not in used]
    preferred = [s for s in short if s.source in DEMO_SOURCES] or short or sampler.pool
    # The pool is sorted; a seeded offset keeps the choice deterministic yet seed-dependent.
    return preferred[sampler._rng.randrange(len(preferred))]  # noqa: SLF001


def _spectrogram_grid(out, utts):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from speechlm.audio.features import log_mel
    from speechlm.audio.io import load_audio
    from speechlm.utils.atomic import atomic_path

    n = len(utts)
    cols = 2
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(12, 2.4 * rows), dpi=90, squeeze=False)
    for ax, u in zip(axes.flat, utts, strict=False):
        wav, sr = load_audio(out / u.audio, sr=16000)
        mel = log_mel(wav[0], sr, n_fft=1024, hop_length=160, n_mels=80).numpy()  # [80, frames]
        ax.imshow(mel, origin="lower", aspect="auto", cmap="magma", extent=(0, u.duration, 0, mel.shape[0]))
        ax.set_title(f"{u.lang} · {u.tags['engine']} {u.tags['voice']}", fontsize=9)
        ax.set_xlabel("s", fontsize=8)
        ax.set_ylabel("mel bin", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.tight_layout()
    png = out / "spectrograms.png"
    try:
        with atomic_path(png) as tmp:
            fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)
    return png


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(
        sub,
        "demo",
        "synthesise a short multi-voice sample: WAVs, spectrograms PNG, summary",
        _cmd_demo,
        description=__doc__,
    )
    p.add_argument("--out", default="demo_out", help="output folder (default ./demo_out)")
    p.add_argument("--seed", type=int, default=0, help="which sentences (and fallback voices) to use")
