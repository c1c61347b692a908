"""API keys: which clients may call the model routes, and what they are called.

Keys come from ``APP_API_KEYS`` (``name:key,name:key``) and ``APP_API_KEYS_FILE``
(one ``name:key`` a line, as a mounted secret holds them). The file is read
again when it changes, so that a key is added, rotated or revoked without a
restart. A key the client presents is compared with every configured key, in
constant time, as SHA-256 digests of equal length: neither the time taken nor
the key's length tells which key, or how much of one, was right. The name is
what the service shows of a client; a key is never shown anywhere.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import time
from collections.abc import Sequence
from pathlib import Path

logger = logging.getLogger(__name__)

MIN_KEY_LENGTH = 16
# Names land in log lines: keep them short and plain.
NAME_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,64}")
# How often, at most, the key file is looked at for a change.
RELOAD_SECONDS = 1.0


class ApiKeyError(ValueError):
    """A malformed entry; the message names its position, never its key."""


def parse(entries: Sequence[str], where: str) -> list[tuple[str, str]]:
    """The ``(name, key)`` pairs of these ``name:key`` entries; empty ones and
    ``#`` comments are skipped. ``where`` says what a position counts ("entry",
    "line")."""
    pairs: list[tuple[str, str]] = []
    for position, entry in enumerate(entries, 1):
        entry = entry.strip()
        if not entry or entry.startswith("#"):
            continue
        name, colon, key = entry.partition(":")
        name, key = name.strip(), key.strip()
        if not colon or not key:
            raise ApiKeyError(f"{where} {position} is not of the form name:key")
        if not NAME_PATTERN.fullmatch(name):
            raise ApiKeyError(
                f"{where} {position}: a name is 1 to 64 letters, digits, '.', '_'"
                " or '-'"
            )
        if len(key) < MIN_KEY_LENGTH:
            raise ApiKeyError(
                f"{where} {position} ({name}): the key is shorter than"
                f" {MIN_KEY_LENGTH} characters"
            )
        for earlier, (other_name, other_key) in enumerate(pairs, 1):
            if name == other_name:
                raise ApiKeyError(f"{where} {position}: the name {name!r} is taken")
            if hmac.compare_digest(key, other_key):
                raise ApiKeyError(
                    f"{where} {position} ({name}): the same key as {other_name}"
                    f" (key {earlier})"
                )
        pairs.append((name, key))
    return pairs


def read_file(path: Path) -> list[tuple[str, str]]:
    """The pairs of a key file, one ``name:key`` a line."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ApiKeyError(f"cannot read {path}: {error}") from error
    return parse(text.splitlines(), "line")


class ApiKeys:
    """The configured keys, by digest, with their clients' names."""

    def __init__(
        self, pairs: Sequence[tuple[str, str]] = (), file: Path | None = None
    ) -> None:
        self._inline = list(pairs)
        self._file = file
        self._file_state: tuple[int, int, int] | None = None
        self._checked_at = 0.0
        self._digests: list[tuple[bytes, str]] = []
        if file is not None:
            self._file_state = _state(file)
        self._load(read_file(file) if file else [])

    @property
    def enabled(self) -> bool:
        """Whether keys are asked for: any are configured, inline or in a file."""
        return bool(self._inline) or self._file is not None

    def identify(self, presented: str) -> str | None:
        """The name of the client whose key this is; None for no key of ours."""
        self._reload_if_changed()
        digest = hashlib.sha256(presented.encode()).digest()
        found = None
        for key_digest, name in self._digests:  # every one, whichever matches
            if hmac.compare_digest(digest, key_digest):
                found = name
        return found

    def _load(self, from_file: list[tuple[str, str]]) -> None:
        names = {name for name, _ in self._inline}
        clashes = [name for name, _ in from_file if name in names]
        if clashes:
            raise ApiKeyError(
                f"{clashes[0]!r} is named in both APP_API_KEYS and the key file"
            )
        self._digests = [
            (hashlib.sha256(key.encode()).digest(), name)
            for name, key in (*self._inline, *from_file)
        ]

    def _reload_if_changed(self) -> None:
        if self._file is None:
            return
        now = time.monotonic()
        if now - self._checked_at < RELOAD_SECONDS:
            return
        self._checked_at = now
        state = _state(self._file)
        if state == self._file_state:
            return
        self._file_state = state
        try:
            self._load(read_file(self._file))
        except ApiKeyError as error:
            # A Secret being rewritten, or a mistake: keep serving the keys
            # that worked, and say so.
            logger.warning("kept the API keys loaded before: %s", error)
        else:
            logger.info("loaded the API keys of %s again", self._file)


def _state(path: Path) -> tuple[int, int, int] | None:
    """What changes when a file is rewritten or replaced (a mounted secret's
    update swaps a symbolic link)."""
    try:
        info = path.stat()
    except OSError:
        return None
    return info.st_ino, info.st_mtime_ns, info.st_size
