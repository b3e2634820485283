from __future__ import annotations

import struct
from pathlib import Path

import zstandard

import decisiontrail
from decisiontrail import record_decision
from decisiontrail.exporters.file import FileSpanExporter
from decisiontrail.recorder import set_recorder
from decisiontrail.store.reader import ReadStats, iter_decisions, iter_files


def make_store(path: Path, n: int, **exporter_options: object) -> list[str]:
    cfg = decisiontrail.configure(exporter=FileSpanExporter(path, **exporter_options), set_global=False,  # type: ignore[arg-type]
                                  processor_options={"max_export_batch_size": 10})
    try:
        ids = [record_decision("m", {"i": i}, i) for i in range(n)]
        cfg.force_flush()
        return ids
    finally:
        cfg.shutdown()
        set_recorder(None)


def test_rotated_files_are_all_read_in_order(tmp_path: Path) -> None:
    ids = make_store(tmp_path, 200, max_bytes=8_000)
    assert len(iter_files(tmp_path)) > 3
    assert [d.decision_id for d in iter_decisions(tmp_path)] == ids


def test_collector_zstd_length_prefixed_messages(tmp_path: Path) -> None:
    src = tmp_path / "plain"
    ids = make_store(src, 30)
    cctx = zstandard.ZstdCompressor()
    out = tmp_path / "collector" / "decisions.json"
    out.parent.mkdir()
    with open(out, "wb") as f:  # what the collector's file exporter writes with compression: zstd
        for line in (src / "decisions.jsonl").read_bytes().splitlines():
            frame = cctx.compress(line)
            f.write(struct.pack(">I", len(frame)) + frame)
    assert [d.decision_id for d in iter_decisions(out.parent)] == ids


def test_whole_file_zstd(tmp_path: Path) -> None:
    src = tmp_path / "plain"
    ids = make_store(src, 30)
    (tmp_path / "z").mkdir()
    (tmp_path / "z" / "old.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress((src / "decisions.jsonl").read_bytes()))
    assert [d.decision_id for d in iter_decisions(tmp_path / "z")] == ids


def test_torn_last_line_is_skipped_and_counted(tmp_path: Path) -> None:
    ids = make_store(tmp_path, 20)
    f = tmp_path / "decisions.jsonl"
    with open(f, "ab") as out:
        out.write(b'{"resourceSpans":[{"resource":')  # a writer killed mid-line
    stats = ReadStats()
    assert [d.decision_id for d in iter_decisions(tmp_path, stats)] == ids
    assert stats.bad_lines == 1


def test_replays_are_deduplicated_by_decision_id(tmp_path: Path) -> None:
    ids = make_store(tmp_path, 20)
    f = tmp_path / "decisions.jsonl"
    f.write_text(f.read_text() * 3)
    stats = ReadStats()
    assert [d.decision_id for d in iter_decisions(tmp_path, stats)] == ids
    assert stats.duplicates == 40
    assert len(list(iter_decisions(tmp_path, dedup=False))) == 60
