"""Hybrid tokenizer: the codec fine-tuned so its first RVQ level carries content (SpeechTokenizer-style semantic
distillation toward the semantic encoder). It is a plain codec checkpoint: ``Codec.load("hybrid")``."""
