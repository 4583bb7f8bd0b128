"""Supervised semantic units: k-means over a hidden layer of the CTC ASR (CosyVoice's "supervised semantic tokens").

A model trained to recognise phonemes keeps what separates them and drops much of what separates voices, so its
hidden layers cluster into units that follow the phones more closely than a small self-supervised encoder's
(measured in the README's tokenizer table). The price: the units inherit the ASR's languages and its errors.

The tokenizer is self-contained: its checkpoint holds the ASR's front end and its first ``layer`` conformer blocks
(the rest and the CTC heads are dropped) and the ASR's feature settings, so a later ``asr_default`` never changes
its tokens, and the tokens file names this exact network (the tokenizer id hashes these weights).

Frame grid: the ASR reads 100 Hz log-mel and subsamples by 2, so its frames are the codec's 50 Hz grid; the output
is cropped or edge-padded to ``ceil(n / 320)`` frames like every semantic tokenizer. Long inputs run the conformer
blocks in windows of ``WINDOW`` frames with ``CONTEXT`` frames of context on each side (bounded attention memory),
after a log-mel computed ``MEL_CHUNK`` frames at a time; the per-utterance feature normalisation is computed over
the whole input first.

Optional output normalisation (``norm``): ``"utterance"`` standardises each feature over the utterance (mean 0,
std 1 per dimension), ``"mean"`` only removes the utterance mean. Both remove a per-voice offset before k-means
(cepstral mean normalisation one level up); they need the whole input, so they suit offline encoding.

Optional adapter (``adapter_epochs > 0`` in :func:`cluster_asr`): a small phone-supervised network between the
(normalised) block output and k-means, :mod:`speechlm.tokenizers.semantic.adapter`; stored with the tokenizer.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from speechlm.errors import SpeechLMError
from speechlm.tokenizers.semantic.adapter import AdapterConfig, AdapterTrainConfig, UnitAdapter, train_adapter

WINDOW = 1000  # frames (20 s) per windowed pass
CONTEXT = 100  # frames of context on each side of a window
MEL_CHUNK = 6000  # log-mel frames (60 s) per STFT pass: the complex STFT of a long input would be GBs
NORMS = ("none", "mean", "utterance")


class ASRLayers(nn.Module):
    """The ASR's front end + its first ``layer`` conformer blocks: 16 kHz audio -> ``[ceil(n/320), d_model]``.

    Parameter names match :class:`speechlm.asr.model.ConformerCTC` (``frontend.*``, ``blocks.{i}.*``), so the
    state dict of a full ASR model loads with :meth:`load_from_asr`.
    """

    def __init__(self, model_cfg: dict, features: dict, layer: int, norm: str = "none",
                 adapter: dict | None = None) -> None:
        super().__init__()
        # Only the ASR's torch-only network module is used (not its transcriber or aligner), imported here so
        # that loading the other semantic tokenizers never imports the ASR package.
        from speechlm.asr.model import ConformerBlock, ConvSubsampler, CTCModelConfig

        cfg = CTCModelConfig.from_dict(model_cfg)
        if not 1 <= layer <= cfg.n_layers:
            raise SpeechLMError(f"layer {layer} must be in 1..{cfg.n_layers} (the ASR's conformer blocks)")
        if int(features["sample_rate"]) != 16000 or int(features["hop_length"]) * cfg.subsample != 320:
            raise SpeechLMError("the ASR's frames must be the 50 Hz grid at 16 kHz (hop_length x subsample = 320)")
        if norm not in NORMS:
            raise SpeechLMError(f"norm must be one of {', '.join(NORMS)}, got {norm!r}")
        self.cfg, self.features, self.layer, self.norm = cfg, dict(features), int(layer), norm
        self.frontend = ConvSubsampler(cfg.n_mels, cfg.d_model, cfg.subsample)
        self.blocks = nn.ModuleList(
            ConformerBlock(cfg.d_model, cfg.n_heads, cfg.ff_mult, cfg.conv_kernel, 0.0) for _ in range(layer)
        )
        self.adapter: UnitAdapter | None = None
        if adapter is not None:
            self.adapter = UnitAdapter(AdapterConfig.from_dict(adapter))
            if self.adapter.cfg.dim != cfg.d_model:
                raise SpeechLMError(f"adapter dim {self.adapter.cfg.dim} != the ASR's d_model {cfg.d_model}")
        self.eval()

    def load_from_asr(self, state_dict: dict[str, torch.Tensor]) -> None:
        """Copy the matching tensors of a full ASR state dict (heads and later blocks are ignored)."""
        own = {k: v for k, v in self.state_dict().items() if not k.startswith("adapter.")}
        take = {k: v.float() for k, v in state_dict.items() if k in own}
        missing = sorted(set(own) - set(take))
        if missing:
            raise SpeechLMError(f"the ASR checkpoint lacks {len(missing)} tensors (e.g. {missing[0]})")
        self.load_state_dict(take, strict=self.adapter is None)

    @torch.inference_mode()
    def forward(self, wav: np.ndarray) -> np.ndarray:
        """16 kHz mono ``[n]`` -> float32 ``[ceil(n / 320), d_model]`` (block output, ``norm`` and the adapter
        applied)."""
        from speechlm.asr.model import lengths_to_mask, normalize_features
        from speechlm.audio.features import log_mel
        from speechlm.tokenizers.semantic.features import num_frames

        f = self.features
        x = np.asarray(wav, np.float32)
        if x.size < 400:  # shorter than one analysis window
            x = np.pad(x, (0, 400 - x.size))
        mel = log_mel(torch.from_numpy(x), f["sample_rate"], n_fft=f["n_fft"], hop_length=f["hop_length"],
                      n_mels=f["n_mels"], chunk_frames=MEL_CHUNK)[None]  # [1, n_mels, F]
        lengths = torch.tensor([mel.shape[-1]])
        h, _ = self.frontend(normalize_features(mel, lengths), lengths)  # [1, T', d]
        t = h.shape[1]
        outs = []
        for a in range(0, t, WINDOW):
            lo, hi = max(0, a - CONTEXT), min(t, a + WINDOW + CONTEXT)
            g = h[:, lo:hi]
            mask = lengths_to_mask(torch.tensor([hi - lo]), hi - lo)
            for block in self.blocks:
                g = block(g, mask)
            outs.append(g[0, a - lo : a - lo + min(WINDOW, t - a)])
        out = torch.cat(outs).float()
        if self.norm != "none":  # over the ASR's own frames, before the grid is fitted
            out = out - out.mean(0, keepdim=True)
            if self.norm == "utterance" and len(out) > 1:
                out = out / (out.std(0, keepdim=True) + 1e-3)
        if self.adapter is not None:
            out = apply_in_windows(self.adapter, out, WINDOW)
        n = num_frames(len(wav))
        if len(out) < n:
            out = torch.cat([out, out[-1:].expand(n - len(out), -1)])
        return out[:n].numpy()


def apply_in_windows(adapter: UnitAdapter, x: torch.Tensor, window: int) -> torch.Tensor:
    """``adapter`` over ``x [T, d]`` ``window`` frames at a time, each with its receptive field of context on both
    sides: the same frames as one pass (bounded activation memory on long inputs)."""
    ctx = adapter.cfg.context
    outs = []
    for a in range(0, len(x), window):
        lo, hi = max(0, a - ctx), min(len(x), a + window + ctx)
        outs.append(adapter(x[lo:hi][None])[0, a - lo : a - lo + min(window, len(x) - a)])
    return torch.cat(outs) if outs else adapter(x[None])[0]


def asr_layers_from_model(asr: str | os.PathLike | None, layer: int, norm: str = "none") -> tuple[ASRLayers, str]:
    """:class:`ASRLayers` cut from an ASR checkpoint folder (None: the shipped ``asr_default``), and the ASR's
    weights hash (which ASR it was, whatever the folder is called later)."""
    from speechlm.asr.transcriber import resolve_model_dir
    from speechlm.utils.checkpoint import load_checkpoint

    ck = load_checkpoint(resolve_model_dir(asr))
    if "model" not in ck.config or "features" not in ck.config:
        raise SpeechLMError(f"{asr}: not a speechlm CTC ASR checkpoint")
    net = ASRLayers(ck.config["model"], ck.config["features"], layer, norm)
    net.load_from_asr(ck.state_dict)
    return net, ck.weights_sha256


def cluster_asr(manifests: Sequence[str], dest: str | os.PathLike, *, asr: str | os.PathLike | None = None,
                layer: int = 3, clusters: int = 500, name: str = "semantic_asr", max_hours: float = 3.0,
                max_frames: int = 400000, seed: int = 0, norm: str = "none", lloyd_iters: int = 0,
                adapter_epochs: int = 0, adapter_adv: float = 0.0, adapter_dilations: Sequence[int] = (1, 2, 4, 8),
                aligner: str | os.PathLike | None = None, show_progress: bool = True) -> Path:
    """k-means (``clusters``) over layer ``layer`` of the ASR on the ``train`` split of ``manifests`` (random
    utterances up to ``max_hours``; at most ``max_frames`` frames clustered) -> a tokenizer folder ``dest``.
    ``norm``: the per-utterance output normalisation (module docstring), stored with the tokenizer;
    ``lloyd_iters``: full k-means passes after the mini-batch ones (:func:`~.kmeans.minibatch_kmeans`).
    ``adapter_epochs > 0``: first train the phone-supervised adapter (:mod:`~.adapter`, speaker-confusion
    weight ``adapter_adv``, 0 = off; one kernel-5 convolution per ``adapter_dilations`` entry) on the same
    utterances, forced-aligned by ``aligner`` (default: the shipped ASR;
    utterances it cannot align only feed k-means), speakers told apart per manifest and within a language;
    k-means then runs on the adapter's output."""
    from tqdm import tqdm

    from speechlm.audio.io import load_audio
    from speechlm.data.manifest import manifest_root, read_manifest
    from speechlm.tokenizers.semantic.kmeans import minibatch_kmeans
    from speechlm.tokenizers.semantic.train import save_tokenizer

    if clusters < 2:
        raise SpeechLMError(f"clusters must be >= 2, got {clusters}")
    if adapter_epochs < 0 or not np.isfinite(adapter_adv) or adapter_adv < 0:
        raise SpeechLMError(f"adapter epochs and weight must be >= 0, got {adapter_epochs}, {adapter_adv}")
    net, asr_sha256 = asr_layers_from_model(asr, layer, norm)
    adapter_cfg = AdapterConfig.from_dict({"dim": net.cfg.d_model, "dilations": list(adapter_dilations)})
    items = []
    for i, m in enumerate(manifests):
        root = manifest_root(m)
        items += [(u.audio_path(root), u, f"{i}:{u.speaker}") for u in read_manifest(m) if u.split == "train"]
    if not items:
        raise SpeechLMError(f"no train utterances in {', '.join(map(str, manifests))}")
    rng = np.random.default_rng(seed)
    rng.shuffle(items)
    aligner_tr = None
    if adapter_epochs > 0:
        from speechlm.asr.transcriber import get_transcriber

        aligner_tr = get_transcriber(aligner)
    feats, labels, speakers, langs, seconds = [], [], [], [], 0.0
    desc = f"ASR layer-{layer} features{' + alignments' if aligner_tr else ''}"
    for path, u, spk in tqdm(items, desc=desc, disable=not show_progress, unit="utt"):
        if seconds >= max_hours * 3600:
            break
        try:
            wav, _ = load_audio(path, sr=16000)
        except SpeechLMError as exc:  # one bad file must not stop a long run
            print(f"skipping {path}: {exc}", flush=True)
            continue
        x = np.clip(wav.mean(0), -1, 1).astype(np.float32)
        feats.append(net(x))
        speakers.append(spk)
        langs.append(u.lang)
        seconds += wav.shape[-1] / 16000
        lab = None
        if aligner_tr is not None:
            try:
                lab = aligner_tr.align(x, u.text, u.lang, sr=16000, phonemes=u.phonemes).frame_labels(
                    50.0, len(feats[-1]))
            except SpeechLMError:  # no phonemes, no G2P for the language, or the aligner refused
                pass
        labels.append(lab)
    if not feats:
        raise SpeechLMError("no train audio could be read")
    adapter_summary: dict = {}
    if adapter_epochs > 0:
        ok = [i for i, lab in enumerate(labels) if lab is not None]
        if not ok:
            raise SpeechLMError("the adapter needs aligned utterances (phonemes or G2P-able text): none aligned")
        phones = sorted({str(p) for i in ok for p in labels[i]})
        pid = {p: j for j, p in enumerate(phones)}
        spk_names = sorted({speakers[i] for i in ok})
        sid = {sp: j for j, sp in enumerate(spk_names)}
        lang_of = {speakers[i]: langs[i] for i in ok}
        lang_ids = {lang: j for j, lang in enumerate(sorted(set(lang_of.values())))}
        tcfg = AdapterTrainConfig(epochs=adapter_epochs, adv=adapter_adv, seed=seed)
        adapter, losses = train_adapter([feats[i] for i in ok],
                                        [np.array([pid[str(p)] for p in labels[i]]) for i in ok],
                                        [sid[speakers[i]] for i in ok], len(phones), len(spk_names), tcfg,
                                        adapter_cfg=adapter_cfg, groups=[lang_ids[lang_of[sp]] for sp in spk_names],
                                        show_progress=show_progress)
        net.adapter = adapter
        with torch.inference_mode():
            feats = [apply_in_windows(adapter, torch.from_numpy(f), WINDOW).numpy() for f in feats]
        adapter_summary["adapter"] = {**dataclasses.asdict(tcfg), **adapter_cfg.to_dict(),
                                      "aligned_utterances": len(ok),
                                      "utterances": len(feats), "phones": len(phones), "speakers": len(spk_names),
                                      "aligner": str(aligner or "default"), "final_losses": losses}
    x = np.concatenate(feats)
    if len(x) > max_frames:
        x = x[np.sort(rng.choice(len(x), max_frames, replace=False))]
    km = minibatch_kmeans(x, clusters, seed=seed, show_progress=show_progress, lloyd_iters=lloyd_iters)
    summary = {"manifests": [str(m) for m in manifests], "train_hours": round(seconds / 3600, 3),
               "asr": str(asr or "default"), "asr_weights_sha256": asr_sha256, "layer": layer,
               "clusters": clusters, "norm": norm, "lloyd_iters": lloyd_iters, "inertia": round(km.inertia, 4),
               **adapter_summary}
    return save_tokenizer(dest, centroids=km.centroids, name=name, features="asr", asr=net, layer=layer,
                          data_summary=summary)
