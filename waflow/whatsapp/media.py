"""WhatsApp media: upload (multipart), URL lookup, streaming download with auth, delete.

Request builders and response parsers live here once; :class:`Media` and :class:`AsyncMedia` only
perform the I/O. Meta's media URLs expire five minutes after lookup, so a download resolves the URL
right before fetching it, and resolves it once more if the fetch is refused as expired. Downloads
are checked against the SHA-256 Meta reports.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import mimetypes
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from waflow.errors import (
    APIError,
    APIResponseValidationError,
    APIStatusError,
    MessageValidationError,
)
from waflow.graph import GraphRequest, GraphResponse

if TYPE_CHECKING:
    from waflow.graph import AsyncGraph, SyncGraph

__all__ = [
    "MEDIA_LIMITS",
    "URL_LIFETIME",
    "AsyncMedia",
    "Media",
    "MediaInfo",
    "MediaUpload",
    "prepare_upload",
]

#: How long a media URL from ``GET /{media-id}`` stays valid.
URL_LIFETIME = timedelta(minutes=5)
_MB = 1024 * 1024
#: MIME types WhatsApp accepts, with the largest file Meta takes for each.
MEDIA_LIMITS: dict[str, int] = {
    "audio/aac": 16 * _MB,
    "audio/amr": 16 * _MB,
    "audio/mpeg": 16 * _MB,
    "audio/mp4": 16 * _MB,
    "audio/ogg": 16 * _MB,
    "text/plain": 100 * _MB,
    "application/pdf": 100 * _MB,
    "application/vnd.ms-powerpoint": 100 * _MB,
    "application/msword": 100 * _MB,
    "application/vnd.ms-excel": 100 * _MB,
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": 100 * _MB,
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": 100 * _MB,
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": 100 * _MB,
    "image/jpeg": 5 * _MB,
    "image/png": 5 * _MB,
    "image/webp": 500 * 1024,
    "video/3gpp": 16 * _MB,
    "video/mp4": 16 * _MB,
}
_EXPIRED_STATUSES = frozenset({401, 403, 404, 410})
_CHUNK = 64 * 1024

#: What :meth:`Media.upload` takes: bytes, a path, or a binary file object.
FileInput = bytes | str | os.PathLike[str] | IO[bytes]


class MediaUpload(BaseModel):
    """An uploaded file: its media ``id`` (send it as ``image=…``, ``document=…``)."""

    model_config = ConfigDict(frozen=True)

    id: str
    retries_taken: int = 0


class MediaInfo(BaseModel):
    """Where a media file can be downloaded, until ``expires_at``."""

    model_config = ConfigDict(frozen=True, extra="allow")

    id: str
    url: str
    mime_type: str | None = None
    sha256: str | None = None
    file_size: int | None = None
    resolved_at: datetime | None = Field(default=None, exclude=True)

    @field_validator("file_size", mode="before")
    @classmethod
    def _size(cls, value: Any) -> Any:
        return int(value) if isinstance(value, str) and value.isdigit() else value

    @property
    def expires_at(self) -> datetime | None:
        """When Meta stops serving ``url`` (five minutes after it was looked up)."""
        return None if self.resolved_at is None else self.resolved_at + URL_LIFETIME


@dataclass(frozen=True)
class _PreparedUpload:
    filename: str
    mime_type: str
    content: bytes
    size: int


def prepare_upload(
    file: FileInput, *, mime_type: str | None = None, filename: str | None = None
) -> _PreparedUpload:
    """Work out name, type and size of ``file`` and check them against WhatsApp's limits."""
    content: bytes
    size: int
    if isinstance(file, (str, os.PathLike)):
        path = Path(file)
        if not path.is_file():
            raise MessageValidationError(f"no such file to upload: {path}")
        filename = filename or path.name
        size = path.stat().st_size
        content = path.read_bytes()
    elif isinstance(file, bytes):
        content, size = file, len(file)
    else:
        # Read now: a retried request must send the same bytes, not an exhausted file handle.
        content = file.read()
        size = len(content)
        name = getattr(file, "name", None)
        filename = filename or (os.path.basename(name) if isinstance(name, str) else None)
    if mime_type is None and filename:
        mime_type = mimetypes.guess_type(filename)[0]
        if mime_type == "audio/3gpp":  # Python's guess for .3gp; WhatsApp takes it as video
            mime_type = "video/3gpp"
    if mime_type is None:
        raise MessageValidationError("cannot tell the media type: pass mime_type= or a filename")
    base_type = mime_type.split(";")[0].strip().lower()
    if base_type not in MEDIA_LIMITS:
        raise MessageValidationError(
            f"WhatsApp does not accept {base_type} media; accepted: {', '.join(MEDIA_LIMITS)}",
            limit="supported media types",
        )
    limit = MEDIA_LIMITS[base_type]
    if size > limit:
        raise MessageValidationError(
            f"{base_type} files may be at most {limit // 1024} KiB, this one has {size // 1024} KiB",
            limit=f"{base_type} <= {limit} bytes",
        )
    extension = mimetypes.guess_extension(base_type) or ""
    return _PreparedUpload(filename or f"upload{extension}", mime_type, content, size)


def upload_request(phone_number_id: str, upload: _PreparedUpload) -> GraphRequest:
    """``POST /{phone-number-id}/media`` as multipart form data."""
    return GraphRequest(
        "POST",
        f"/{phone_number_id}/media",
        data={"messaging_product": "whatsapp", "type": upload.mime_type},
        files={"file": (upload.filename, upload.content, upload.mime_type)},
    )


def parse_upload(response: GraphResponse) -> MediaUpload:
    """The media id of an upload answer."""
    media_id = response.data.get("id") if isinstance(response.data, dict) else None
    if not isinstance(media_id, str):
        raise APIResponseValidationError("media upload answered without an `id`")
    return MediaUpload(id=media_id, retries_taken=response.retries_taken)


def info_request(media_id: str, phone_number_id: str | None) -> GraphRequest:
    """``GET /{media-id}`` (scoped to the number, which Meta uses to check ownership)."""
    params = {"phone_number_id": phone_number_id} if phone_number_id else None
    return GraphRequest("GET", f"/{media_id}", params=params)


def parse_info(response: GraphResponse, resolved_at: datetime) -> MediaInfo:
    """The URL and metadata of a media lookup answer."""
    if not isinstance(response.data, dict) or "url" not in response.data:
        raise APIResponseValidationError("media lookup answered without a `url`")
    return MediaInfo.model_validate({**response.data, "resolved_at": resolved_at})


def delete_request(media_id: str, phone_number_id: str | None) -> GraphRequest:
    """``DELETE /{media-id}``."""
    params = {"phone_number_id": phone_number_id} if phone_number_id else None
    return GraphRequest("DELETE", f"/{media_id}", params=params)


def download_request(info: MediaInfo) -> GraphRequest:
    """``GET`` of the media URL itself, with the same bearer token."""
    return GraphRequest("GET", info.url)


def _is_expired(exc: APIStatusError) -> bool:
    return exc.status_code in _EXPIRED_STATUSES


def _again_after(
    graph: SyncGraph | AsyncGraph,
    request: GraphRequest,
    exc: APIError,
    digest: _Digest,
    renewed: bool,
    retries: int,
) -> float | None:
    """After a failed download: ``None`` to look the (expired) URL up again at once, else the
    wait before trying again (the client's retry policy). Raises ``exc`` when neither helps."""
    if digest.size:  # part of the file was handed out already: a download does not resume
        raise exc
    if isinstance(exc, APIStatusError) and _is_expired(exc) and not renewed:
        return None
    wait = graph.retry_wait(request, exc, retries)
    if wait is None:
        raise exc
    return wait


class _Digest:
    """Counts and hashes downloaded bytes, then compares with what Meta promised."""

    def __init__(self, info: MediaInfo) -> None:
        self.info = info
        self.size = 0
        self._sha = hashlib.sha256()

    def update(self, chunk: bytes) -> bytes:
        self.size += len(chunk)
        self._sha.update(chunk)
        return chunk

    def verify(self) -> None:
        expected = self.info.sha256
        if expected is None:
            return
        actual_hex = self._sha.hexdigest()
        actual_b64 = base64.b64encode(self._sha.digest()).decode()
        if expected not in (actual_hex, actual_b64):
            raise APIResponseValidationError(
                f"media {self.info.id}: downloaded {self.size} bytes whose SHA-256 does not match"
            )


@contextmanager
def _target(destination: str | os.PathLike[str] | IO[bytes]) -> Iterator[IO[bytes]]:
    """Where a download is written. A path gets a file of its own beside it, moved into place
    only once the download is complete and checked: a failed or corrupt download leaves nothing
    (and an older file at the path stays as it was)."""
    if not isinstance(destination, (str, os.PathLike)):
        yield destination
        return
    final = Path(os.path.realpath(destination))  # through a symlink, as open() would write
    part = final.with_name(f".{final.name}.{uuid.uuid4().hex[:12]}.part")
    # Created as open() creates a file (0666 under the umask), not private like a temp file.
    descriptor = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(descriptor, "wb") as target:
            yield target
        with contextlib.suppress(FileNotFoundError):  # an existing file keeps its mode
            os.chmod(part, final.stat().st_mode & 0o7777)
        os.replace(part, final)
    except BaseException:
        part.unlink(missing_ok=True)
        raise


class Media:
    """Media operations of a :class:`~waflow.WhatsApp` client (``wa.media``)."""

    def __init__(self, graph: SyncGraph, phone_number_id: str) -> None:
        self._graph = graph
        self._phone_number_id = phone_number_id

    def upload(
        self, file: FileInput, *, mime_type: str | None = None, filename: str | None = None
    ) -> MediaUpload:
        """Upload ``file`` (bytes, path or binary file) and return its media id."""
        prepared = prepare_upload(file, mime_type=mime_type, filename=filename)
        return parse_upload(self._graph.request(upload_request(self._phone_number_id, prepared)))

    def get(self, media_id: str) -> MediaInfo:
        """Look up the (five-minute) download URL and metadata of ``media_id``."""
        response = self._graph.request(info_request(media_id, self._phone_number_id))
        return parse_info(response, self._graph.clock.now())

    def delete(self, media_id: str) -> bool:
        """Delete an uploaded file; true when Meta confirms."""
        response = self._graph.request(delete_request(media_id, self._phone_number_id))
        return bool(isinstance(response.data, dict) and response.data.get("success"))

    def iter_bytes(self, media_id: str) -> Iterator[bytes]:
        """Stream the file of ``media_id`` in chunks.

        An expired URL is looked up again once; a download that fails before its first byte (a
        5xx, a connection failure) is tried again as the client's retry policy says.
        """
        retries = 0
        renewed = False
        while True:
            info = self.get(media_id)
            digest = _Digest(info)
            request = download_request(info)
            try:
                with self._graph.stream(request) as response:
                    for chunk in response.iter_bytes(_CHUNK):
                        yield digest.update(chunk)
            except APIError as exc:
                wait = _again_after(self._graph, request, exc, digest, renewed, retries)
                renewed, retries = renewed or wait is None, retries + (wait is not None)
                self._graph.clock.sleep(wait or 0.0)
                continue
            digest.verify()
            return

    def download(self, media_id: str) -> bytes:
        """The whole file of ``media_id`` in memory."""
        return b"".join(self.iter_bytes(media_id))

    def download_to(self, media_id: str, destination: str | os.PathLike[str] | IO[bytes]) -> int:
        """Stream the file of ``media_id`` into a path or binary file; return the bytes written.

        A path is written only once the whole file has arrived and matched its SHA-256.
        """
        written = 0
        with _target(destination) as target:
            for chunk in self.iter_bytes(media_id):
                written += target.write(chunk)
        return written


class AsyncMedia:
    """Media operations of an :class:`~waflow.AsyncWhatsApp` client (``wa.media``)."""

    def __init__(self, graph: AsyncGraph, phone_number_id: str) -> None:
        self._graph = graph
        self._phone_number_id = phone_number_id

    async def upload(
        self, file: FileInput, *, mime_type: str | None = None, filename: str | None = None
    ) -> MediaUpload:
        """Upload ``file`` (bytes, path or binary file) and return its media id."""
        prepared = prepare_upload(file, mime_type=mime_type, filename=filename)
        return parse_upload(
            await self._graph.request(upload_request(self._phone_number_id, prepared))
        )

    async def get(self, media_id: str) -> MediaInfo:
        """Look up the (five-minute) download URL and metadata of ``media_id``."""
        response = await self._graph.request(info_request(media_id, self._phone_number_id))
        return parse_info(response, self._graph.clock.now())

    async def delete(self, media_id: str) -> bool:
        """Delete an uploaded file; true when Meta confirms."""
        response = await self._graph.request(delete_request(media_id, self._phone_number_id))
        return bool(isinstance(response.data, dict) and response.data.get("success"))

    async def iter_bytes(self, media_id: str) -> AsyncIterator[bytes]:
        """Stream the file of ``media_id`` in chunks (see :meth:`Media.iter_bytes`)."""
        retries = 0
        renewed = False
        while True:
            info = await self.get(media_id)
            digest = _Digest(info)
            request = download_request(info)
            try:
                async with self._graph.stream(request) as response:
                    async for chunk in response.aiter_bytes(_CHUNK):
                        yield digest.update(chunk)
            except APIError as exc:
                wait = _again_after(self._graph, request, exc, digest, renewed, retries)
                renewed, retries = renewed or wait is None, retries + (wait is not None)
                await self._graph.clock.asleep(wait or 0.0)
                continue
            digest.verify()
            return

    async def download(self, media_id: str) -> bytes:
        """The whole file of ``media_id`` in memory."""
        return b"".join([chunk async for chunk in self.iter_bytes(media_id)])

    async def download_to(
        self, media_id: str, destination: str | os.PathLike[str] | IO[bytes]
    ) -> int:
        """Stream the file of ``media_id`` into a path or binary file; return the bytes written.

        A path is written only once the whole file has arrived and matched its SHA-256.
        """
        written = 0
        with _target(destination) as target:
            async for chunk in self.iter_bytes(media_id):
                written += target.write(chunk)
        return written
