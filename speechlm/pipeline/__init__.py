"""In-the-wild audio to a training set: an Emilia-style pipeline (issue 23).

Stages, each a module usable and testable alone, all on float32 mono audio at :data:`PIPELINE_SR`:

1. :mod:`~speechlm.pipeline.standardise` - streamed decoding (ffmpeg), mono, 16 kHz, loudness normalisation;
2. :mod:`~speechlm.pipeline.denoise` - remove music and background;
3. :mod:`~speechlm.pipeline.diarise` - who speaks when;
4. :mod:`~speechlm.pipeline.segment` - voice activity, 3-30 s single-speaker utterances cut at pauses;
5. :mod:`~speechlm.pipeline.transcribe` - language identification, ASR, word timestamps, confidence;
6. :mod:`~speechlm.pipeline.filter` - DNSMOS and other quality gates, each rejection counted by reason;
7. :mod:`~speechlm.pipeline.tags` + :mod:`~speechlm.pipeline.describe` - style tags and descriptions.

:mod:`~speechlm.pipeline.runner` chains them per input file (resumable, on Ray or in-process) and
:mod:`~speechlm.pipeline.export` writes the manifest, Lhotse CutSet, WebDataset shards and Parquet.
Nothing heavy is imported here.
"""

from speechlm.pipeline.config import PIPELINE_SR, PipelineConfig

__all__ = ["PIPELINE_SR", "PipelineConfig"]
