"""Fetching a model's weight file: the one path the Models page and `python -m analysis download` share.

Only on a user's explicit request. The file streams into a hidden temporary file in the weights
folder while its sha256 is computed; it is checked against the digest the source publishes
(torch.hub's convention: a prefix of it in the file name, as torchvision's and crowsonkb's
files have) and moved into place only when complete. Any failure (no network, a cut
connection, a wrong checksum, a cancel) removes the temporary file: nothing half-written is
ever left where a model would load it. Every finished download's sha256 is recorded in the
folder's SHA256SUMS (``sha256sum -c`` reads it), whether the source publishes one or not.

INCEPTIONISM_WEIGHTS_MIRROR redirects every download to a mirror: base URL + the file name,
for users behind a proxy or with their own copies.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from analysis.errors import Cancelled, ConfigError, WeightsMissingError
from analysis.progress import ShouldCancel
from analysis.zoo.specs import ModelSpec
from analysis.zoo.weights.locate import weights_dir

MIRROR_ENV = "INCEPTIONISM_WEIGHTS_MIRROR"
SUMS_FILE = "SHA256SUMS"
CHUNK_BYTES = 1 << 20
TIMEOUT_S = 30.0  # per network read: a stalled server ends the download rather than hanging the page
_HUB_HASH = re.compile(r"-([0-9a-f]{8,64})\.")  # torch.hub.HASH_REGEX, at least 8 digits

OnBytes = Callable[[int, int | None], None]
"""Progress: bytes received so far and the total (None where the server does not say)."""


@dataclass(frozen=True)
class Download:
    model: str
    path: Path
    url: str
    size: int
    sha256: str
    published_sha256: str | None  # the digest (or prefix) the source publishes, which sha256 matched

    def describe(self) -> str:
        check = (f"matches the published {self.published_sha256}" if self.published_sha256
                 else "the source publishes none to check against")
        return f"{self.path} ({self.size / 1e6:.1f} MB), sha256 {self.sha256} ({check})"


def source_url(spec: ModelSpec) -> str:
    """Where the file comes from: the mirror when INCEPTIONISM_WEIGHTS_MIRROR is set, else its source."""
    if not spec.weights.url or not spec.weights.filename:
        why = {"efficientnet": f"its weights ship with the lab (the {spec.weights.package} package)",
               "random": "an untrained twin's weights are seeded random numbers"}.get(
            spec.weights.format, f"its weights are {spec.weights.format}")
        raise ConfigError(f"{spec.name} has no download address: {why}, so there is nothing to download.")
    mirror = os.environ.get(MIRROR_ENV, "").strip()
    if not mirror:
        return spec.weights.url
    if not mirror.startswith(("http://", "https://", "file://")):
        raise ConfigError(f"{MIRROR_ENV}={mirror!r} is not an http://, https:// or file:// address.")
    return mirror.rstrip("/") + "/" + spec.weights.filename


def published_sha256(spec: ModelSpec) -> str | None:
    """The sha256 (prefix) the source publishes for this file: in its name, torch.hub's way, or None."""
    match = _HUB_HASH.search(spec.weights.filename or "")
    return match.group(1) if match else None


def download_weights(spec: ModelSpec, folder: Path | None = None, on_bytes: OnBytes | None = None,
                     should_cancel: ShouldCancel | None = None) -> Download:
    """Fetch spec's weight file into the weights folder, checked and complete, or raise with nothing left behind."""
    url = source_url(spec)
    folder = folder or weights_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        descriptor, name = tempfile.mkstemp(dir=folder, prefix=f".{spec.weights.filename}.", suffix=".part")
    except OSError as err:
        raise WeightsMissingError(f"Cannot write into the weights folder {folder} ({err.strerror}).") from None
    partial = Path(name)
    target = folder / spec.weights.filename
    try:
        with os.fdopen(descriptor, "wb") as handle:
            size, digest = _stream(url, handle, on_bytes, should_cancel)
        expected = published_sha256(spec)
        if expected and not digest.startswith(expected):
            raise WeightsMissingError(f"Download of {url} is not the published file: its sha256 is {digest}, the "
                                      f"source publishes {expected}. Nothing was kept; try again or another mirror.")
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    _record(folder / SUMS_FILE, target.name, digest)
    return Download(spec.name, target, url, size, digest, expected)


def _record(sums: Path, name: str, digest: str) -> None:
    """One 'sha256  name' line per file (sha256sum's format), the newest download's."""
    lines = sums.read_text(encoding="utf-8").splitlines() if sums.is_file() else []
    kept = [line for line in lines if line.partition("  ")[2] != name]
    sums.write_text("".join(f"{line}\n" for line in [*kept, f"{digest}  {name}"]), encoding="utf-8")


def _stream(url: str, out: object, on_bytes: OnBytes | None, should_cancel: ShouldCancel | None
            ) -> tuple[int, str]:
    """Copy the response body to out, hashing it; every network failure becomes one WeightsMissingError line."""
    request = urllib.request.Request(url, headers={"User-Agent": "inceptionism-lab"})
    digest, received, total = hashlib.sha256(), 0, None
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            while chunk := response.read(CHUNK_BYTES):
                if should_cancel is not None and should_cancel():
                    raise Cancelled("Download cancelled; nothing was kept.")
                out.write(chunk)
                digest.update(chunk)
                received += len(chunk)
                if on_bytes is not None:
                    on_bytes(received, total)
    except urllib.error.HTTPError as err:
        raise WeightsMissingError(f"Download of {url} failed: the server answered {err.code} {err.reason}.") from None
    except http.client.IncompleteRead as err:
        raise WeightsMissingError(f"Download of {url} was cut off after {received + len(err.partial)} of "
                                  f"{total} bytes; nothing was kept. Try again.") from None
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as err:
        reason = getattr(err, "reason", None) or err
        raise WeightsMissingError(f"Download of {url} failed ({reason}); nothing was kept. Where this machine is "
                                  f"offline, set {MIRROR_ENV} or put the file in the weights folder by hand.") from None
    if total is not None and received != total:
        raise WeightsMissingError(f"Download of {url} was cut off after {received} of {total} bytes; "
                                  "nothing was kept. Try again.")
    return received, digest.hexdigest()
