"""A codec whose RVQ level 1 *is* a supervised semantic unit (``semantic:asr``), and later levels the residual.

The distilled hybrid (:mod:`speechlm.tokenizers.hybrid.train`, SpeechTokenizer-style) pulls level 1's output
toward the teacher's features, but its codes are still chosen by nearest neighbour in an 8-dimensional code space
of the codec latent, and they stay acoustic (README: level-1 PNMI 1.04x the plain codec's). Here level 1 is chosen
by the teacher itself: the k-means unit of the ASR block (the ``semantic:asr`` recipe, clustered with as many
units as the codec has codes). Its embedding (``[K, dim]``, learnt, initialised at the mean codec latent of each
unit) is subtracted from the latent, and the codec's RVQ levels 2..n_q quantise what is left: speaker, pitch and
recording detail. Level 1 thus carries exactly the semantic units, so an LM over level 1 models content.

The price: the unit needs the whole utterance (the ASR's per-utterance normalisation and conformer attention), so
a codec with a unit level encodes offline (``encode_stream`` refuses; decoding still streams), and the encoder
carries the ASR's front end and first blocks (and the unit adapter, if any: 2.81 M parameters shipped).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from speechlm.errors import SpeechLMError


def unit_spec(tokenizer) -> tuple[dict, dict[str, torch.Tensor], np.ndarray]:
    """(spec, ASR-block state dict, centroids ``[K, d]``) of a loaded ``semantic:asr``
    :class:`~speechlm.tokenizers.semantic.api.SemanticTokenizer`."""
    if tokenizer.features_kind != "asr":
        raise SpeechLMError(f"{tokenizer.tokenizer_id}: a unit level needs an ASR-unit tokenizer "
                            "('speechlm semantic cluster-asr'), not one over MFCCs or the masked-prediction encoder")
    asr = tokenizer.asr
    spec = {"asr": {"model": asr.cfg.to_dict(), "features": dict(asr.features)}, "layer": asr.layer,
            "norm": getattr(asr, "norm", "none"), "clusters": int(len(tokenizer.centroids)),
            "tokenizer": tokenizer.tokenizer_id}
    if getattr(asr, "adapter", None) is not None:  # absent = none, so older unit codecs keep their config
        spec["adapter"] = asr.adapter.cfg.to_dict()
    return spec, {k: v.detach().clone() for k, v in asr.state_dict().items()}, tokenizer.centroids


def unit_codec_from(base: nn.Module, base_cfg, tokenizer, init_audio: list[np.ndarray] | None = None,
                    show_progress: bool = False):
    """A unit codec (config with ``unit_level``) made from a trained plain codec and a ``semantic:asr`` tokenizer.

    Encoder and decoder are the base's; the base's RVQ levels 2..n_q become levels 1..n_q-1 of the residual
    quantizer (they quantised a residual after a level 1 before too); the unit embeddings start at the mean base
    latent of each unit over ``init_audio`` (16 kHz clips; units never seen start at the overall mean).
    Returns (model, config)."""
    import dataclasses

    from speechlm.tokenizers.codec.builder import build_codec

    spec, asr_state, centroids = unit_spec(tokenizer)
    if spec["clusters"] != base_cfg.codebook_size:
        raise SpeechLMError(f"the tokenizer has {spec['clusters']} units but the codec's codebooks have "
                            f"{base_cfg.codebook_size} codes; cluster with --clusters {base_cfg.codebook_size}")
    if base_cfg.n_q < 2:
        raise SpeechLMError("a unit codec needs a base with at least 2 codebooks")
    cfg = dataclasses.replace(base_cfg, unit_level=spec)
    model = build_codec(cfg)
    if not any("parametrizations" in k for k in base.state_dict()):  # an exported base: weight norm folded
        from speechlm.tokenizers.codec.streaming import remove_weight_norm

        remove_weight_norm(model)
    sd = {}
    for k, v in base.state_dict().items():
        if k.startswith("quantizer.layers."):
            i = int(k.split(".")[2])
            if i == 0:
                continue
            k = k.replace(f"quantizer.layers.{i}.", f"quantizer.layers.{i - 1}.", 1)
        sd[k] = v
    sd.update({f"unit_level.asr.{k}": v for k, v in asr_state.items()})
    sd["unit_level.centroids"] = torch.from_numpy(np.asarray(centroids, np.float32))
    missing, unexpected = model.load_state_dict(sd, strict=False)
    if unexpected or [m for m in missing if m != "unit_level.embed.weight"]:
        raise SpeechLMError(f"base codec does not fit the unit codec (missing {missing[:3]}, unexpected "
                            f"{unexpected[:3]})")
    with torch.no_grad():
        model.eval()
        dim, k = model.unit_level.embed.weight.shape[1], spec["clusters"]
        sums, counts = torch.zeros(k, dim), torch.zeros(k)
        from tqdm import tqdm

        for x in tqdm(init_audio or [], desc="unit embeddings", disable=not show_progress, unit="clip"):
            w = torch.from_numpy(np.asarray(x, np.float32))[None, None]
            z = base.encoder(base._pad(w))[0].T  # [F, dim]
            u = model.unit_level.units(w, z.shape[0])[0]
            sums.index_add_(0, u, z)
            counts += torch.bincount(u, minlength=k).float()
        mean = sums.sum(0) / counts.sum().clamp(min=1)
        model.unit_level.embed.weight.copy_(torch.where(counts[:, None] > 0, sums / counts.clamp(min=1)[:, None],
                                                        mean[None]))
        model.train()
    return model, cfg
