"""Keys for signed checkpoints: Ed25519 (pyca ``cryptography``, the ``signing`` extra) or HMAC-SHA256.

Key files (``decisiontrail keygen``):

- ``decisiontrail.key``: an Ed25519 private key, PKCS#8 PEM, mode 0600. Only the recording
  processes hold it.
- ``decisiontrail.pub``: its public key, SubjectPublicKeyInfo PEM. Auditors hold it; it cannot sign.
- ``decisiontrail.hmac`` (``keygen --hmac``): ``hmac-sha256 <base64 secret>``, mode 0600. The
  symmetric choice: whoever verifies with it can also sign with it.

Each signature names its key by a key id: the first 4 bytes of sha256 over ``decisiontrail\\n``, an
algorithm byte (0x01 Ed25519, as in C2SP signed notes; 0xff HMAC-SHA256) and the public key (the
secret, for HMAC), in hex. ``verify`` takes several keys and picks by key id, so keys can rotate.
A key can also be given inline (the PEM text, or the ``hmac-sha256 …`` line) where a path is
expected: an environment variable filled from a secret store.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from .errors import ConfigurationError

__all__ = ["Signer", "Verifier", "Ed25519Signer", "HmacSigner", "load_signer", "load_verifier", "keygen",
           "KEY_NAME", "PRIVATE_KEY_FILE", "PUBLIC_KEY_FILE", "HMAC_KEY_FILE"]

KEY_NAME = "decisiontrail"
PRIVATE_KEY_FILE = "decisiontrail.key"
PUBLIC_KEY_FILE = "decisiontrail.pub"
HMAC_KEY_FILE = "decisiontrail.hmac"
_HMAC_PREFIX = "hmac-sha256 "
_ED25519, _HMAC = b"\x01", b"\xff"


def _key_id(algorithm: bytes, material: bytes) -> bytes:
    return hashlib.sha256(KEY_NAME.encode() + b"\n" + algorithm + material).digest()[:4]


class Signer(Protocol):
    """Signs checkpoint notes; ``key_id`` is the 4-byte id written in front of each signature."""

    @property
    def key_id(self) -> bytes: ...

    def sign(self, message: bytes) -> bytes: ...


class Verifier(Protocol):
    @property
    def key_id(self) -> bytes: ...

    def verify(self, message: bytes, signature: bytes) -> bool: ...


def _crypto() -> Any:
    try:
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError as exc:
        raise ConfigurationError("Ed25519 keys need pyca cryptography: pip install 'decisiontrail[signing]'"
                                 ) from exc
    return ed25519


def _raw_public(public_key: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    raw: bytes = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return raw


class Ed25519Signer:
    algorithm = "ed25519"

    def __init__(self, private_key: Any) -> None:
        self._key = private_key
        self.public = Ed25519Verifier(private_key.public_key())
        self.key_id = self.public.key_id

    def sign(self, message: bytes) -> bytes:
        signature: bytes = self._key.sign(message)
        return signature


class Ed25519Verifier:
    algorithm = "ed25519"

    def __init__(self, public_key: Any) -> None:
        self._key = public_key
        self.key_id = _key_id(_ED25519, _raw_public(public_key))

    def verify(self, message: bytes, signature: bytes) -> bool:
        from cryptography.exceptions import InvalidSignature

        try:
            self._key.verify(signature, message)
            return True
        except InvalidSignature:
            return False


@dataclass(frozen=True)
class HmacSigner:
    """HMAC-SHA256 with a shared secret: signs and verifies (whoever verifies can also sign)."""

    secret: bytes
    algorithm = "hmac-sha256"

    @property
    def key_id(self) -> bytes:
        return _key_id(_HMAC, self.secret)

    def sign(self, message: bytes) -> bytes:
        return hmac.new(self.secret, message, hashlib.sha256).digest()

    def verify(self, message: bytes, signature: bytes) -> bool:
        return hmac.compare_digest(self.sign(message), signature)


def _text(key: str | os.PathLike[str] | bytes) -> str:
    if isinstance(key, bytes):
        return key.decode("ascii")
    s = str(key)
    if s.lstrip().startswith(("-----BEGIN", _HMAC_PREFIX)):
        return s
    path = Path(s)
    try:
        return path.read_text(encoding="ascii")
    except OSError as exc:
        raise ConfigurationError(f"cannot read the key file {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigurationError(f"{path} is not a decisiontrail key file") from exc


def _hmac_secret(text: str) -> bytes | None:
    if not text.startswith(_HMAC_PREFIX):
        return None
    try:
        secret = base64.b64decode(text[len(_HMAC_PREFIX):].strip(), validate=True)
    except ValueError as exc:
        raise ConfigurationError("the HMAC key is not valid base64") from exc
    if len(secret) < 16:
        raise ConfigurationError("the HMAC key is shorter than 16 bytes")
    return secret


def load_signer(key: str | os.PathLike[str] | bytes | Signer) -> Signer:
    """A signer from a key file (or its text): an Ed25519 private key PEM or an HMAC key."""
    if not isinstance(key, (str, bytes, os.PathLike)):
        return key
    text = _text(key).strip()
    secret = _hmac_secret(text)
    if secret is not None:
        return HmacSigner(secret)
    ed25519 = _crypto()
    from cryptography.hazmat.primitives import serialization

    try:
        private = serialization.load_pem_private_key(text.encode(), password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigurationError("the signing key is neither an Ed25519 private key (PEM) nor an HMAC key "
                                 "(decisiontrail keygen writes both kinds)") from exc
    if not isinstance(private, ed25519.Ed25519PrivateKey):
        raise ConfigurationError(f"the signing key is a {type(private).__name__}, not Ed25519")
    return Ed25519Signer(private)


def load_verifier(key: str | os.PathLike[str] | bytes) -> Verifier:
    """A verifier from a public key PEM, a private key PEM (its public half) or an HMAC key."""
    text = _text(key).strip()
    secret = _hmac_secret(text)
    if secret is not None:
        return HmacSigner(secret)
    if "PRIVATE KEY" in text.splitlines()[0]:
        signer = load_signer(text)
        assert isinstance(signer, Ed25519Signer)
        return signer.public
    ed25519 = _crypto()
    from cryptography.hazmat.primitives import serialization

    try:
        public = serialization.load_pem_public_key(text.encode())
    except (ValueError, TypeError) as exc:
        raise ConfigurationError("not a public key (PEM) or an HMAC key") from exc
    if not isinstance(public, ed25519.Ed25519PublicKey):
        raise ConfigurationError(f"the public key is a {type(public).__name__}, not Ed25519")
    return Ed25519Verifier(public)


def _write_new(path: Path, data: bytes, mode: int) -> None:
    """Create ``path`` (never over an existing key) with ``mode`` from the start."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(path, mode)  # the umask may have taken bits away from a public key's 0644


def keygen(out: str | os.PathLike[str], *, use_hmac: bool = False) -> tuple[list[Path], str]:
    """Write a new key pair (or HMAC key) into ``out``; returns the files written and the key id.
    Raises FileExistsError rather than overwrite a key."""
    directory = Path(out)
    directory.mkdir(parents=True, exist_ok=True)
    if use_hmac:
        secret = secrets.token_bytes(32)
        path = directory / HMAC_KEY_FILE
        _write_new(path, (_HMAC_PREFIX + base64.b64encode(secret).decode() + "\n").encode(), 0o600)
        return [path], HmacSigner(secret).key_id.hex()
    ed25519 = _crypto()
    from cryptography.hazmat.primitives import serialization

    key_path, pub_path = directory / PRIVATE_KEY_FILE, directory / PUBLIC_KEY_FILE
    for p in (key_path, pub_path):
        if p.exists():
            raise FileExistsError(f"{p} exists; keygen never overwrites a key (move it away first)")
    private = ed25519.Ed25519PrivateKey.generate()
    _write_new(key_path, private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()), 0o600)
    _write_new(pub_path, private.public_key().public_bytes(serialization.Encoding.PEM,
                                                           serialization.PublicFormat.SubjectPublicKeyInfo), 0o644)
    return [key_path, pub_path], Ed25519Signer(private).key_id.hex()
