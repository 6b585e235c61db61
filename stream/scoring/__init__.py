"""What runs only in the worker's scoring process: decode, features, scoring, writes, reads.

The Faust process never imports this package (it starts the process as ``python -m
stream.scoring``, see ``__main__``); the two exchange only what :mod:`stream.boundary` defines.

- ``__main__`` — how it starts (``python -m stream.scoring``, with its two pipes)
- ``main`` — its call loop: answers micro-batches in order on one pipe, reads on another
- ``service`` — everything the process owns, built from its settings; the periodic housekeeping
- ``alerts``, ``clusters``, ``dispositions`` — one processor per input topic
- ``decode`` — bytes → validated events, or dead letters with their reason
- ``address_features`` — address features looked up by batch key, cached
- ``encode`` — ScoreEvents; ``partitioning`` — the partition of every record produced
- ``sinks`` — where rows are written (the StreamSink contract) and how a failed write is judged
- ``model_holder`` — the model in use, hot reload and fallback; ``shadow`` — the challenger
- ``reads`` — the read API's queries; ``phases`` — the per-micro-batch trace
"""
