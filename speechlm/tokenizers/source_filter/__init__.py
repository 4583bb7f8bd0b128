"""The source-filter codec: speech as explicit F0, gain, aperiodicity and spectral-envelope tokens.

Analysis and synthesis are WORLD's (:mod:`pyworld`); the quantisers (scalar F0 and gain, a vector-quantised
band aperiodicity, a residual VQ of the mel-cepstral envelope) are learned by k-means, and a small convolutional
refiner turns the decoded 20-ms parameters into 5-ms envelopes before synthesis. Load it with
``speechlm.tokenizers.codec.api.Codec.load("sf")`` (or ``"default"``).
"""

from speechlm.tokenizers.source_filter.codec import SourceFilterCodec

__all__ = ["SourceFilterCodec"]
