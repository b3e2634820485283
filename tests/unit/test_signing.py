"""Keys: keygen's files, loading keys from files, text or the environment, and clear errors."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from opentelemetry.sdk.resources import Resource

from decisiontrail.anchors import AnchoringExporter
from decisiontrail.cli import main
from decisiontrail.config import build_processor, configure
from decisiontrail.errors import ConfigurationError
from decisiontrail.exporters.file import FileSpanExporter
from decisiontrail.signing import Ed25519Signer, HmacSigner, keygen, load_signer, load_verifier


def test_keygen_writes_a_private_key_only_its_owner_reads(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keygen", "--out", str(tmp_path)]) == 0
    key, pub = tmp_path / "decisiontrail.key", tmp_path / "decisiontrail.pub"
    assert key.stat().st_mode & 0o777 == 0o600
    assert pub.read_text().startswith("-----BEGIN PUBLIC KEY-----")
    signer, verifier = load_signer(key), load_verifier(pub)
    assert isinstance(signer, Ed25519Signer) and signer.key_id == verifier.key_id
    assert f"key id {signer.key_id.hex()}" in capsys.readouterr().out
    assert verifier.verify(b"note", signer.sign(b"note")) and not verifier.verify(b"other", signer.sign(b"note"))
    assert main(["keygen", "--out", str(tmp_path)]) == 1  # never over an existing key
    assert load_signer(key).key_id == signer.key_id


def test_keys_load_from_their_text_too(tmp_path: Path) -> None:
    files, key_id = keygen(tmp_path, use_hmac=True)
    text = files[0].read_text()
    assert text.startswith("hmac-sha256 ")
    signer = load_signer(text)
    assert isinstance(signer, HmacSigner) and signer.key_id.hex() == key_id
    assert load_verifier(files[0]).verify(b"x", signer.sign(b"x"))
    files, _ = keygen(tmp_path / "ed")
    assert load_signer(files[0].read_text()).key_id == load_verifier(files[1].read_text()).key_id
    assert load_verifier(files[0]).key_id == load_verifier(files[1]).key_id  # the private key's public half


@pytest.mark.parametrize("bad", ["hmac-sha256 !!!", "hmac-sha256 c2hvcnQ=", "-----BEGIN PRIVATE KEY-----\nxx\n"])
def test_a_bad_key_argument_raises_and_a_missing_file_says_which(bad: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError):
        load_signer(bad)
    with pytest.raises(ConfigurationError, match="cannot read the key file"):
        configure(path=tmp_path, set_global=False, signing_key=tmp_path / "nope.key")


def test_the_environment_sets_the_key_and_anchors_for_the_configurator_too(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    files, _ = keygen(tmp_path / "k")
    monkeypatch.setenv("DECISIONTRAIL_SIGNING_KEY", str(files[0]))
    monkeypatch.setenv("DECISIONTRAIL_ANCHORS", str(tmp_path / "anchors"))
    monkeypatch.setenv("DECISIONTRAIL_CHECKPOINT_EVERY", "7")
    processor = build_processor(FileSpanExporter(tmp_path / "d"), Resource.create(), spool_dir=False)
    try:
        stage = processor.prepare
        assert stage.checkpointer.every == 7 and stage.checkpointer.signer is not None  # type: ignore[union-attr]
        assert isinstance(processor.exporter, AnchoringExporter)
    finally:
        processor.shutdown()
    monkeypatch.setenv("DECISIONTRAIL_SIGNING_KEY", "hmac-sha256 c2hvcnQ=")
    monkeypatch.delenv("DECISIONTRAIL_ANCHORS")
    with caplog.at_level(logging.ERROR, logger="decisiontrail.config"):
        processor = build_processor(FileSpanExporter(tmp_path / "d2"), Resource.create(), spool_dir=False)
    try:
        assert "checkpoints are NOT signed" in caplog.text
        assert processor.prepare.checkpointer is None  # type: ignore[union-attr]
    finally:
        processor.shutdown()
