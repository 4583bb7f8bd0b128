"""Evaluation: metrics, pretrained judges and reports.

- :mod:`speechlm.eval.metrics`: PESQ, STOI, SI-SDR, log-mel L1, MCD (DTW), F0 RMSE and voicing error.
- :mod:`speechlm.eval.speaker`: speaker similarity (resemblyzer loaded weights-only; pluggable).
- :mod:`speechlm.eval.mos`: DNSMOS (speechmos's shipped ONNX models).
- :mod:`speechlm.eval.asr` + :mod:`speechlm.text.wer`: ASR judges (whisper-base by default, whisper-tiny.en,
  pocketsphinx, ctc, a local whisper folder) and WER/CER; :mod:`speechlm.eval.whisper`: the hash-pinned Whisper
  judge itself.
- :mod:`speechlm.eval.bootstrap`: bootstrap confidence intervals.
- :mod:`speechlm.eval.report`: ``Report`` as JSON, Markdown and self-contained HTML.
- Drivers: :func:`speechlm.eval.pairs.evaluate_pairs`, :func:`~speechlm.eval.pairs.evaluate_codec`,
  :func:`~speechlm.eval.pairs.evaluate_codec_fn`, :func:`speechlm.eval.tts.evaluate_tts`.
- Measuring tokenizers: :mod:`speechlm.eval.codec_bench` (``speechlm codec bench``: bitrates vs Opus and Codec2)
  and :mod:`speechlm.eval.tokens` (``speechlm tokens analyze``: purity, PNMI, speaker probe, unit-LM perplexity).

Nothing heavy is imported here; import the submodule you need.
"""
