"""API key hashing, the secret key's checks, and encryption of platform tokens at rest.

`CRIER_SECRET_KEY` holds one or more secrets, comma separated, newest first. Tokens are
encrypted with the first and decrypt with any (MultiFernet), so a rotation is: put the new
secret in front, run `crier rotate-secrets`, and drop the old one once nothing needs it.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from functools import lru_cache
from urllib.parse import unquote, urlsplit

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

API_KEY_PREFIX = "crier_"
# The seed product's SDK refuses a key that does not start with its own prefix; an
# operator moving its callers over mints their keys with it (`crier keys create --prefix`).
SEED_KEY_PREFIX = "pe_live_"
KEY_PREFIX_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9]{0,14}_(?:[A-Za-z0-9]{1,14}_)?")
SECRET_ENV = "CRIER_SECRET_KEY"
# `crier secret` prints 64 characters; 16 random ones already carry 96 bits.
MIN_SECRET_LENGTH = 16
# Values that shipped in this repository or its examples, and the usual placeholders: a
# deployment that uses one is as open as one without a secret.
KNOWN_DEFAULT_SECRETS = frozenset(
    {
        "dev-insecure-secret-change-me",
        "change-me",
        "changeme",
        "change_me",
        "secret",
        "secret-key",
        "secret_key",
        "your-secret-key",
        "please-change-me",
        # deploy/k8s/base/secret.yaml
        "change-me-to-64-random-characters",
    }
)
# Words that mark a value as a placeholder wherever they appear in it ("change-me-to-…",
# "replace-with-your-key"): nobody generates a real secret containing them.
PLACEHOLDER_MARKERS = (
    "change-me",
    "changeme",
    "change_me",
    "change-this",
    "replace-me",
    "replaceme",
    "replace-with",
    "placeholder",
    "your-secret",
    "insecure",
)


class InsecureSecretKey(RuntimeError):
    """A secret setting (CRIER_SECRET_KEY above all) is unset, weak or a placeholder."""


class PlaceholderCredential(InsecureSecretKey):
    """A password in a service URL is a placeholder from the shipped manifests."""


def is_placeholder(value: str) -> bool:
    """Whether a secret is a published default or reads as a placeholder."""
    lowered = value.strip().lower()
    return lowered in KNOWN_DEFAULT_SECRETS or any(m in lowered for m in PLACEHOLDER_MARKERS)


def generate_secret_key() -> str:
    return secrets.token_urlsafe(48)


def secret_keys(secret_key: str) -> list[str]:
    """The secrets of a CRIER_SECRET_KEY value, newest first."""
    return [part.strip() for part in secret_key.split(",") if part.strip()]


def check_secret_key(secret_key: str | None) -> None:
    """Refuse to run on a secret an attacker could know or guess."""
    hint = f"generate one with `crier secret` and set it as {SECRET_ENV}"
    keys = secret_keys(secret_key or "")
    if not keys:
        raise InsecureSecretKey(f"{SECRET_ENV} is not set: {hint}.")
    for position, key in enumerate(keys, start=1):
        which = f"{SECRET_ENV}" if len(keys) == 1 else f"{SECRET_ENV} (key {position})"
        if key.lower() in KNOWN_DEFAULT_SECRETS:
            raise InsecureSecretKey(f"{which} is a published default value: {hint}.")
        if is_placeholder(key):
            raise InsecureSecretKey(f"{which} is a placeholder value: {hint}.")
        if len(key) < MIN_SECRET_LENGTH:
            raise InsecureSecretKey(
                f"{which} is too short ({len(key)} characters, at least "
                f"{MIN_SECRET_LENGTH} needed): {hint}."
            )
        if len(set(key)) < 8:
            raise InsecureSecretKey(f"{which} has too little variety to be secret: {hint}.")


def check_service_urls(urls: dict[str, str | None]) -> None:
    """Refuse a database, Redis or broker URL whose password is a placeholder (the shipped
    manifests say `change-me`): such a service is open to anyone who read them."""
    for name, url in urls.items():
        if not url:
            continue
        try:
            password = urlsplit(url).password
        except ValueError:
            continue
        if password and is_placeholder(unquote(password)):
            raise PlaceholderCredential(
                f"{name} has a placeholder password ({unquote(password)!r}): set the real "
                "password of that service."
            )


def generate_api_key(prefix: str = API_KEY_PREFIX) -> str:
    return prefix + secrets.token_urlsafe(32)


def hash_api_key(key: str) -> str:
    # Keys carry 256 bits of randomness, so a plain SHA-256 cannot be brute-forced;
    # a slow KDF would only slow down every request.
    return hashlib.sha256(key.encode()).hexdigest()


def display_prefix(key: str, prefix: str = API_KEY_PREFIX) -> str:
    """The key's prefix and six characters of its secret: enough to tell keys apart."""
    return key[: len(prefix) + 6]


@lru_cache(maxsize=32)
def _single_fernet(secret: str) -> Fernet:
    derived = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=b"crier-token-encryption", info=b"fernet-v1"
    ).derive(secret.encode())
    return Fernet(base64.urlsafe_b64encode(derived))


@lru_cache(maxsize=8)
def _fernet(secret_key: str) -> MultiFernet:
    keys = secret_keys(secret_key)
    if not keys:
        raise InsecureSecretKey(f"{SECRET_ENV} is not set: generate one with `crier secret`.")
    return MultiFernet([_single_fernet(key) for key in keys])


def encrypt_token(secret_key: str, token: str) -> str:
    """Encrypt with the newest secret."""
    return _fernet(secret_key).encrypt(token.encode()).decode()


def decrypt_token(secret_key: str, ciphertext: str) -> str:
    """Decrypt with whichever of the secrets encrypted it."""
    try:
        return _fernet(secret_key).decrypt(ciphertext.encode()).decode()
    except InvalidToken as exc:
        raise ValueError(f"token cannot be decrypted with {SECRET_ENV}") from exc


def reencrypt_token(secret_key: str, ciphertext: str) -> str:
    """The same plaintext, encrypted under the newest secret."""
    try:
        return _fernet(secret_key).rotate(ciphertext.encode()).decode()
    except InvalidToken as exc:
        raise ValueError(f"token cannot be decrypted with {SECRET_ENV}") from exc


def encrypted_with_newest(secret_key: str, ciphertext: str) -> bool:
    """Whether the newest secret alone decrypts it: a rotation has nothing left to do."""
    keys = secret_keys(secret_key)
    if not keys:
        raise InsecureSecretKey(f"{SECRET_ENV} is not set: generate one with `crier secret`.")
    try:
        _single_fernet(keys[0]).decrypt(ciphertext.encode())
    except InvalidToken:
        return False
    return True


def signing_key(secret: str, purpose: str) -> bytes:
    """A key for one purpose (media links, ...) derived from one secret."""
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=b"crier-signing", info=purpose.encode()
    ).derive(secret.encode())


def signing_keys(secret_key: str, purpose: str) -> list[bytes]:
    """One derived key per secret, newest first."""
    return [signing_key(key, purpose) for key in secret_keys(secret_key)]
