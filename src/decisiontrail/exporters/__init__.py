"""Span exporters of decisiontrail: the embedded OTLP-JSON file exporter."""

from __future__ import annotations

from .file import FileSpanExporter

__all__ = ["FileSpanExporter"]
