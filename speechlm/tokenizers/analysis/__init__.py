"""Tokenizer analysis: how much content, speaker and predictability discrete tokens carry.

``metrics`` is pure numpy/torch (no aligner, no PESQ). ``run`` drives a whole analysis and imports the aligner
(``speechlm.asr``) and the signal metrics (``speechlm.eval``) lazily inside its functions, so importing
``speechlm.tokenizers`` never pulls in those higher layers.
"""
