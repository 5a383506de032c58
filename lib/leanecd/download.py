"""Cached, checksummed, resumable downloads: the network boundary of the JARVIS route.

:func:`cached_download` keeps one file per URL in a cache directory (default
``~/.cache/leanecd/<subdir>``, or ``$LEANECD_CACHE/<subdir>``), laid out as::

    <name>          the file, present only once it has passed validation
    <name>.sha256   its SHA-256 in ``sha256sum`` format (``sha256sum -c`` checks it)
    <name>.part     an unfinished download; the next call resumes from its size

The rules:

* a cached file is used only if its SHA-256 matches its sidecar; a truncated or
  corrupt one is reported with a warning, deleted and fetched again;
* a file placed in the cache by hand (no sidecar, e.g. copied from a machine with
  internet) is validated and, if good, adopted;
* a download goes to ``<name>.part``, resumes with an HTTP ``Range`` request after an
  interruption, is validated, gets its sidecar, and only then is renamed into place
  (an atomic rename, so a crash never leaves a bad file under the good name);
* before any download a short connection probe (3 s) checks that the host can be
  reached; without a network the call fails at once with
  :class:`~leanecd.errors.NetworkUnavailableError`, and network errors during the
  transfer become :class:`~leanecd.errors.DownloadError` (no traceback from
  inside ``requests``). ``LEANECD_OFFLINE=1`` skips the probe and counts as no network.

Only :func:`_fetch` (bytes from a URL into the ``.part`` file) and :func:`_probe`
(one TCP connection) touch the network; tests replace those two.
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import urllib.parse
import urllib.request
import warnings
from collections.abc import Callable
from pathlib import Path

from .errors import DownloadError, NetworkUnavailableError
from .store import atomic_path

__all__ = ["default_cache_dir", "network_available", "cached_download", "file_sha256"]

#: Seconds the connection probe waits before declaring the network absent.
PROBE_TIMEOUT_S = 3.0
#: Resume attempts within one call when the transfer stops early.
MAX_ATTEMPTS = 3
_CHUNK = 1 << 20  # bytes


def default_cache_dir(subdir: str = "jarvis") -> Path:
    """``$LEANECD_CACHE/<subdir>`` if that variable is set, else ``~/.cache/leanecd/<subdir>``."""
    base = os.environ.get("LEANECD_CACHE", "").strip()
    root = Path(base).expanduser() if base else Path.home() / ".cache" / "leanecd"
    return root / subdir


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


# --------------------------------------------------------------------------- network probe


def _probe(host: str, port: int, timeout_s: float) -> bool:
    """True if a TCP connection to ``host:port`` opens within ``timeout_s`` seconds.

    Runs in a daemon thread so a hanging DNS lookup cannot outlast the timeout.
    """
    result: list[bool] = []

    def attempt():
        try:
            with socket.create_connection((host, port), timeout=timeout_s):
                result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=attempt, daemon=True)
    thread.start()
    thread.join(timeout_s)
    return bool(result and result[0])


def _probe_target(url: str) -> tuple[str, int]:
    """The host and port a download of ``url`` connects to first (its proxy, if one is set)."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    proxy = urllib.request.getproxies().get(parts.scheme)
    if proxy and not urllib.request.proxy_bypass(host):
        p = urllib.parse.urlsplit(proxy if "://" in proxy else "http://" + proxy)
        return p.hostname or "", p.port or (443 if p.scheme == "https" else 80)
    return host, parts.port or (443 if parts.scheme == "https" else 80)


def network_available(url: str, timeout_s: float = PROBE_TIMEOUT_S) -> bool:
    """Whether ``url``'s host (or the configured proxy) accepts a connection within ``timeout_s`` s.

    Always False when the environment variable ``LEANECD_OFFLINE`` is ``1``/``true``/``yes``.
    """
    if os.environ.get("LEANECD_OFFLINE", "").strip().lower() in ("1", "true", "yes"):
        return False
    host, port = _probe_target(url)
    return bool(host) and _probe(host, port, timeout_s)


# --------------------------------------------------------------------------- the transfer


def _fetch(url: str, part: Path, offset: int) -> int | None:
    """Write the bytes of ``url`` from ``offset`` on into ``part``; return the full size if known.

    Asks for ``Range: bytes=<offset>-``; a server that answers with the whole file
    (200) makes the transfer start over at byte 0. Network errors raise
    :class:`DownloadError`; what arrived stays in ``part`` for the next resume.
    """
    import requests  # here: only a download needs it (it comes with jarvis-tools)
    from tqdm.auto import tqdm

    headers = {"Range": f"bytes={offset}-"} if offset else {}
    try:
        with requests.get(url, stream=True, headers=headers, timeout=(10, 60)) as r:
            if offset and r.status_code == 416:  # nothing after offset: the part is complete
                return _content_range_total(r.headers.get("Content-Range")) or offset
            r.raise_for_status()
            if r.status_code != 206:
                offset = 0
            length = r.headers.get("Content-Length")
            total = _content_range_total(r.headers.get("Content-Range")) if offset else None
            if total is None and length is not None:
                total = offset + int(length)
            with open(part, "r+b" if offset else "wb") as fh, tqdm(
                total=total, initial=offset, unit="B", unit_scale=True, desc=part.name, leave=False
            ) as bar:
                fh.seek(offset)
                fh.truncate()
                for chunk in r.iter_content(_CHUNK):
                    fh.write(chunk)
                    bar.update(len(chunk))
            return total
    except requests.RequestException as exc:
        kept = part.stat().st_size if part.exists() else 0
        raise DownloadError(
            f"download of {url} failed ({type(exc).__name__}: {exc}); {kept} bytes kept in {part}, "
            "the next call resumes from there"
        ) from None


def _content_range_total(value: str | None) -> int | None:
    """The full size from a ``Content-Range: bytes a-b/total`` header (None if absent or ``*``)."""
    if not value or "/" not in value:
        return None
    total = value.rsplit("/", 1)[1].strip()
    return int(total) if total.isdigit() else None


# --------------------------------------------------------------------------- the cache


def _sidecar(dest: Path) -> Path:
    return dest.with_name(dest.name + ".sha256")


def _read_sidecar(dest: Path) -> str | None:
    try:
        return _sidecar(dest).read_text().split()[0].lower()
    except (OSError, IndexError):
        return None


def _write_sidecar(dest: Path, digest: str) -> None:
    with atomic_path(_sidecar(dest)) as tmp:
        tmp.write_text(f"{digest}  {dest.name}\n")


def _problem(path: Path, validate: Callable[[Path], str | None] | None, sha256: str | None) -> tuple[str | None, str]:
    """``(problem or None, sha256 of path)``."""
    digest = file_sha256(path)
    if sha256 is not None and digest != sha256.lower():
        return f"SHA-256 {digest} differs from the expected {sha256}", digest
    return (validate(path) if validate is not None else None), digest


def _discard(*paths: Path) -> None:
    for p in paths:
        p.unlink(missing_ok=True)


def cached_download(
    url: str,
    dest: str | os.PathLike,
    *,
    validate: Callable[[Path], str | None] | None = None,
    sha256: str | None = None,
    offline_hint: str = "",
    probe_timeout_s: float = PROBE_TIMEOUT_S,
) -> Path:
    """Return ``dest`` holding a validated copy of ``url``, downloading it only if needed.

    Parameters
    ----------
    url : what to download.
    dest : where the file lives in the cache (its directory is created).
    validate : ``validate(path) -> None`` if the file is good, else a short description
        of what is wrong; run on every new download before it is accepted.
    sha256 : the expected SHA-256, if known (checked on every download and reuse).
    offline_hint : appended to the no-network message (what to do instead).
    probe_timeout_s : seconds the connection probe may take.

    Raises :class:`NetworkUnavailableError` when a download is needed and the host
    cannot be reached, :class:`DownloadError` when the transfer fails or the file is
    corrupt. See the module docstring for the cache rules.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    sidecar, part = _sidecar(dest), dest.with_name(dest.name + ".part")

    if dest.exists():
        recorded = _read_sidecar(dest)
        if recorded is None:
            problem, digest = _problem(dest, validate, sha256)
            if problem is None:
                warnings.warn(f"{dest}: no checksum file; the file passed validation and is used", stacklevel=2)
                _write_sidecar(dest, digest)
                return dest
        else:
            digest = file_sha256(dest)
            problem = None if digest == recorded else f"SHA-256 {digest} differs from {sidecar.name} ({recorded})"
            if problem is None and sha256 is not None and digest != sha256.lower():
                problem = f"SHA-256 {digest} differs from the expected {sha256}"
            if problem is None:
                return dest
        warnings.warn(f"{dest}: cached file is truncated or corrupt ({problem}); deleted, downloading it again",
                      stacklevel=2)
        _discard(dest, sidecar)

    if not network_available(url, probe_timeout_s):
        host, port = _probe_target(url)
        raise NetworkUnavailableError(
            f"no network: cannot reach {host}:{port} within {probe_timeout_s:g} s to download {url} "
            f"into {dest}. {offline_hint}".strip()
        )

    restarted = False
    for attempt in range(1, MAX_ATTEMPTS + 1):
        offset = part.stat().st_size if part.exists() else 0
        try:
            total = _fetch(url, part, offset)
        except DownloadError:
            if attempt == MAX_ATTEMPTS:
                raise
            continue
        size = part.stat().st_size if part.exists() else 0
        if total is not None and size < total:
            if attempt == MAX_ATTEMPTS:
                raise DownloadError(f"download of {url} stopped at {size} of {total} bytes; kept in {part}, "
                                    "the next call resumes from there")
            continue
        problem, digest = _problem(part, validate, sha256)
        if problem is None:
            _write_sidecar(dest, digest)
            os.replace(part, dest)
            return dest
        _discard(part)
        if offset == 0 or restarted:
            raise DownloadError(f"download of {url} is corrupt ({problem}); it was deleted, nothing was kept")
        warnings.warn(f"{part}: resumed download is corrupt ({problem}); starting again from byte 0", stacklevel=2)
        restarted = True
    raise DownloadError(f"download of {url} did not complete in {MAX_ATTEMPTS} attempts; {part} keeps what arrived")
