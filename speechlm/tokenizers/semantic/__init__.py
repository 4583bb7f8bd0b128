"""Semantic tokenizer (HuBERT recipe at small scale): MFCC k-means targets, a masked-prediction encoder, k-means
over one of its layers. ``SemanticTokenizer.load(name_or_dir)`` follows the AudioTokenizer protocol."""
