"""The local write-ahead spool: decision spans that are not delivered yet, on disk until they are.

DecisionSpanProcessor writes here what it cannot hand to the exporter now (the export queue stayed
full, the collector is unreachable or refused a batch, the process is exiting), and a
:class:`Replayer` thread sends it again until each record is delivered, dead-lettered or kept aside.

- records.py: one checksummed record per line (an OTLP JSON request with a header);
- segments.py: the segment files, the writer (:class:`Spool`) and a claimed :class:`Segment`;
- replay.py: the :class:`Replayer` thread.

The ``.spool`` suffix keeps the audit reader, which reads ``*.json``/``*.jsonl`` recursively, from
taking pending data for delivered data.
"""

from __future__ import annotations

from .records import Record, decode, encode
from .replay import Replayer
from .segments import BAD_SUFFIX, SUFFIX, Segment, Spool, read_spool_file

__all__ = ["Spool", "Segment", "Replayer", "Record", "encode", "decode", "read_spool_file", "SUFFIX",
           "BAD_SUFFIX"]
