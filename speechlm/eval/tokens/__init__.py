"""Tokenizer analysis: how much content, speaker and predictability discrete tokens carry.

``metrics`` is pure numpy/torch (no aligner, no PESQ). ``run`` drives a whole analysis (``speechlm tokens
analyze``): it measures the tokenizers with the aligner (``speechlm.asr``) and the signal metrics, so it lives in
``eval``, above the tokenizer layer it measures.
"""
