"""Streaming classification: files, cameras and network streams, each unit of frames encoded once.

    sources.py   parse a source name; one reader thread per source (open with timeouts, decode,
                 sample by time, preprocess with numpy, reconnect with backoff); the Hub of units
    pipeline.py  the inference loop: units of all sources batched into one encoder call, a ring
                 buffer of unit embeddings per source, the head per window; events and the summary
    overlay.py   --save-video: the input with its labels drawn, encoded with PyAV
    run.py       ``run(sources, model=...)``: what `inti-edge run` calls

No module here imports torch: with an ONNX or TensorRT artifact a deploy-only install streams.
"""

from .pipeline import Stream, StreamOptions, Summary, SourceSummary
from .sources import SourceError, SourceSpec, parse_source
from .run import RunError, run

__all__ = ["Stream", "StreamOptions", "Summary", "SourceSummary", "SourceError", "SourceSpec", "parse_source",
           "RunError", "run"]
