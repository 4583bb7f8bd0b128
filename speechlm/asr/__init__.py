"""CTC speech recognition and forced alignment.

- :mod:`speechlm.asr.model`: a small conformer with a phoneme head and a character head (CTC).
- :mod:`speechlm.asr.decode`: greedy CTC decoding.
- :mod:`speechlm.asr.align`: CTC Viterbi forced alignment to phone and word spans (:class:`Alignment`).
- :mod:`speechlm.asr.transcriber`: load a checkpoint; ``transcribe(wav)`` and ``align(wav, text, lang)``.
- :mod:`speechlm.asr.train`: the training recipe.

Nothing heavy is imported here; import the submodules.
"""
