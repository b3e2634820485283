"""``decisiontrail verify`` on a signed embedded store: untouched it verifies; tampered in each way
the issue lists (tests/tampering.py), it says where and what, and exits 1."""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from tampering import CASES, AuditFiles, write_chain

import decisiontrail
from decisiontrail.cli import main
from decisiontrail.signing import load_signer
from decisiontrail.store import iter_decisions

PER_CHAIN = 20  # single decisions per chain, plus one packed batch of 3 rows


@dataclass
class Signed:
    data: Path
    anchors: Path
    keys: list[Path]     # the two public keys (the second chain was signed after a rotation)
    attacker: Path       # a key of the attacker's own


def record_chain(data: Path, anchors: Path, key: Path, service: str) -> None:
    """One process's chain: decisions in request spans, flushed in small batches so checkpoints
    (every 8 decisions) fall in the middle of the chain, then a clean shutdown (closed)."""
    cfg = decisiontrail.configure(path=data, service_name=service, set_global=False, signing_key=key,
                                  anchors=anchors, checkpoint_every=8)
    write_chain(cfg, PER_CHAIN)


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> Signed:
    root = tmp_path_factory.mktemp("signed")
    for who in ("k1", "k2", "attacker"):
        assert main(["keygen", "--out", str(root / who)]) == 0
    record_chain(root / "data", root / "anchors", root / "k1" / "decisiontrail.key", "svc-a")
    record_chain(root / "data", root / "anchors", root / "k2" / "decisiontrail.key", "svc-b")
    return Signed(root / "data", root / "anchors", [root / k / "decisiontrail.pub" for k in ("k1", "k2")],
                  root / "attacker" / "decisiontrail.key")


def verify(data: Path, keys: list[Path], anchors: Path | None, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    args = ["verify", "--data", str(data)] + [a for k in keys for a in ("--public-key", str(k))]
    if anchors is not None:
        args += ["--anchors", str(anchors)]
    capsys.readouterr()
    rc = main(args)
    return rc, capsys.readouterr().out


def copy(signed: Signed, tmp_path: Path) -> tuple[Path, Path]:
    data, anchors = tmp_path / "data", tmp_path / "anchors"
    shutil.copytree(signed.data, data)
    shutil.copytree(signed.anchors, anchors)
    return data, anchors


def test_an_untouched_signed_store_verifies_with_a_summary_per_chain(signed: Signed, capsys: pytest.CaptureFixture[str]
                                                                     ) -> None:
    rc, out = verify(signed.data, signed.keys, signed.anchors, capsys)
    assert rc == 0, out
    chains = [line for line in out.splitlines() if line.startswith("chain ")]
    assert len(chains) == 2
    for line, service in zip(sorted(chains, key=lambda l: "svc-b" in l), ("svc-a", "svc-b")):
        assert re.search(rf"\({service}\): {PER_CHAIN + 3} decisions, 1 outcome/review records, seq 1\.\.(\d+), "
                         r"last checkpoint seq \1 at "
                         r"\S+, key [0-9a-f]{8}, closed$", line), line
    assert f"2 chain(s), {2 * (PER_CHAIN + 3)} decisions, 2 outcome/review records, 0 problem(s)" in out
    assert "verified: signed by key" in out and "every anchored checkpoint present" in out
    assert "not proven" not in out


def test_the_reader_does_not_count_checkpoints_as_decisions(signed: Signed) -> None:
    got = list(iter_decisions(signed.data))
    assert len(got) == 2 * (PER_CHAIN + 3)
    assert {d.model_name for d in got} == {"m"}


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_tampering_is_caught(case: str, signed: Signed, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    tamper, expected = CASES[case]
    data, anchors = copy(signed, tmp_path)
    files = AuditFiles(data)
    tamper(files, load_signer(signed.attacker))
    files.save()
    rc, out = verify(data, signed.keys, anchors, capsys)
    assert rc == 1, out
    assert re.search(expected, out), out


def test_a_cut_tail_without_anchors_looks_open_and_says_so(signed: Signed, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    data, _ = copy(signed, tmp_path)
    files = AuditFiles(data)
    CASES["cut tail"][0](files, load_signer(signed.attacker))
    files.save()
    rc, out = verify(data, signed.keys, None, capsys)
    assert rc == 0, out  # only the anchors can tell a cut chain from a killed process
    assert re.search(r"\(svc-a\): .* open since seq \d+$", out, flags=re.M), out
    assert "not proven: no --anchors: a chain removed whole, or cut back to an earlier checkpoint" in out


def test_without_keys_it_checks_the_links_and_says_the_signatures_are_not_proven(
        signed: Signed, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out = verify(signed.data, [], signed.anchors, capsys)
    assert rc == 0 and "signed, keys not checked, closed" in out
    assert "not proven: signatures not checked (no --public-key)" in out
    data, anchors = copy(signed, tmp_path)
    files = AuditFiles(data)
    CASES["edited decision"][0](files, load_signer(signed.attacker))
    files.save()
    assert verify(data, [], None, capsys)[0] == 1  # a naive edit shows without any key


def test_rotated_keys_each_verify_their_own_chain(signed: Signed, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out = verify(signed.data, signed.keys[:1], signed.anchors, capsys)
    assert rc == 1
    assert re.search(r"chain \S+ seq \d+: signed by key [0-9a-f]{8}, which is not among the given keys", out)
    assert not re.search(r"\(svc-a\).*problem", out)


def test_nothing_to_verify_is_a_failure(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty").mkdir()
    rc, out = verify(tmp_path / "empty", [], None, capsys)
    assert rc == 1 and "nothing to verify: the store holds no audit records" in out
    capsys.readouterr()
    assert main(["verify", "--data", str(tmp_path / "missing")]) == 2  # a usage error: the path is wrong
    assert "nothing to verify: no audit data at" in capsys.readouterr().err


def test_hmac_keys_sign_and_verify(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keygen", "--hmac", "--out", str(tmp_path / "k")]) == 0
    key = tmp_path / "k" / "decisiontrail.hmac"
    assert key.stat().st_mode & 0o777 == 0o600
    record_chain(tmp_path / "data", tmp_path / "anchors", key, "svc-h")
    rc, out = verify(tmp_path / "data", [key], tmp_path / "anchors", capsys)
    assert rc == 0 and "closed" in out, out
    assert main(["keygen", "--hmac", "--out", str(tmp_path / "other")]) == 0
    rc, out = verify(tmp_path / "data", [tmp_path / "other" / "decisiontrail.hmac"], None, capsys)
    assert rc == 1 and "not among the given keys" in out
