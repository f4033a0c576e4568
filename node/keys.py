"""The node's Ed25519 key pair: signs peer requests, acknowledgements and network passes."""
import base64
import binascii
import os

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

KEY_FILE = "node_ed25519.pem"


def key_path(cfg):
    return os.path.join(cfg.data_dir, KEY_FILE)


def ensure_key(cfg):
    """Create the node key if there is none (never replaces one); return (path, created)."""
    path = key_path(cfg)
    if os.path.exists(path):
        return path, False
    os.makedirs(cfg.data_dir, exist_ok=True)
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    # O_EXCL: two concurrent inits cannot both write, and the file is never world-readable.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    return path, True


_cache = {}


def private_key(cfg):
    """The node's private key, loaded once per process."""
    path = key_path(cfg)
    if path not in _cache:
        try:
            with open(path, "rb") as handle:
                _cache[path] = serialization.load_pem_private_key(handle.read(), password=None)
        except FileNotFoundError:
            raise FileNotFoundError(f"{path}: no node key; run 'circnode init' first") from None
    return _cache[path]


def public_key_text(cfg):
    return encode_public_key(private_key(cfg).public_key())


# --- the text form of a public key (node.ini, the protocol, passes) -----------

KEY_PREFIX = "ed25519:"


def encode_public_key(pub: Ed25519PublicKey) -> str:
    """Return the text form ``ed25519:<base64 of the raw 32 bytes>``."""
    return KEY_PREFIX + base64.b64encode(pub.public_bytes_raw()).decode("ascii")


def decode_public_key(text: str) -> Ed25519PublicKey:
    """Parse ``ed25519:<base64>`` (padded or not); raise ValueError if it is not one."""
    if not isinstance(text, str) or not text.strip().startswith(KEY_PREFIX):
        raise ValueError(f"public key must start with {KEY_PREFIX!r}")
    b64 = text.strip()[len(KEY_PREFIX):].rstrip("=")
    try:
        raw = base64.b64decode(b64 + "=" * (-len(b64) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("public key is not valid standard base64 after 'ed25519:'") from None
    if len(raw) != 32:
        raise ValueError(f"public key must be 32 raw bytes, got {len(raw)}")
    return Ed25519PublicKey.from_public_bytes(raw)
