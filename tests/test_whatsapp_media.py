"""Media: upload (multipart), URL lookup, streaming download with auth and re-resolution, delete."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path
from typing import Any

import httpx
import pytest

from waflow import WhatsApp
from waflow.errors import (
    APIResponseValidationError,
    APIStatusError,
    MessageValidationError,
    ServerError,
)
from waflow.testing import FakeGraphAPI, FrozenClock

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4 + b"\r\n--"


@pytest.fixture
def fake() -> FakeGraphAPI:
    return FakeGraphAPI(clock=FrozenClock())


def test_upload_bytes_then_send_by_id(fake: FakeGraphAPI) -> None:
    wa = fake.whatsapp()
    upload = wa.media.upload(PNG, mime_type="image/png")
    assert fake.media_content(upload.id) == PNG  # the multipart body arrived byte for byte
    wa.send_image("4915112345678", upload.id, caption="Dein Rad")
    assert fake.sent.last.body["image"] == {"id": upload.id, "caption": "Dein Rad"}


def test_upload_from_path_guesses_type_and_name(fake: FakeGraphAPI, tmp_path: Path) -> None:
    path = tmp_path / "rechnung.pdf"
    path.write_bytes(b"%PDF-1.7 fake")
    upload = fake.whatsapp().media.upload(path)
    info = fake.whatsapp().media.get(upload.id)
    assert info.mime_type == "application/pdf"
    assert info.file_size == len(b"%PDF-1.7 fake")


def test_upload_from_file_object_reads_it_once(fake: FakeGraphAPI) -> None:
    handle = io.BytesIO(PNG)
    handle.name = "bike.png"
    upload = fake.whatsapp().media.upload(handle)
    assert fake.media_content(upload.id) == PNG


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"file": b"GIF89a", "mime_type": "image/gif"}, "does not accept image/gif"),
        ({"file": b"x" * (5 * 1024 * 1024 + 1), "mime_type": "image/jpeg"}, "at most 5120 KiB"),
        ({"file": b"x" * (500 * 1024 + 1), "mime_type": "image/webp"}, "at most 500 KiB"),
        ({"file": b"data"}, "cannot tell the media type"),
        ({"file": "/no/such/file.png"}, "no such file"),
    ],
)
def test_bad_uploads_fail_before_any_request(
    fake: FakeGraphAPI, kwargs: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(MessageValidationError, match=fragment):
        fake.whatsapp().media.upload(**kwargs)
    assert fake.requests == []


def test_download_streams_with_the_bearer_token(fake: FakeGraphAPI, tmp_path: Path) -> None:
    media_id = fake.add_media(PNG, "image/png")
    wa = fake.whatsapp()
    assert wa.media.download(media_id) == PNG
    target = tmp_path / "out.png"
    assert wa.media.download_to(media_id, target) == len(PNG)
    assert target.read_bytes() == PNG
    download = [r for r in fake.requests if "attachments" in r.path][-1]
    assert download.status_code == 200


def test_expired_url_is_resolved_again(fake: FakeGraphAPI) -> None:
    media_id = fake.add_media(PNG, "image/png")
    fake.fail_next(status=404, path="attachments", body=b"URL signature expired")
    assert fake.whatsapp().media.download(media_id) == PNG
    paths = [(r.method, "attachments" in r.path, r.status_code) for r in fake.requests]
    assert paths == [
        ("GET", False, 200),
        ("GET", True, 404),
        ("GET", False, 200),
        ("GET", True, 200),
    ]


def test_url_expires_five_minutes_after_lookup(fake: FakeGraphAPI) -> None:
    media_id = fake.add_media(PNG, "image/png")
    wa = fake.whatsapp()
    info = wa.media.get(media_id)
    assert info.expires_at is not None
    assert (info.expires_at - info.resolved_at).total_seconds() == 300  # type: ignore[operator]
    assert isinstance(fake.clock, FrozenClock)
    fake.clock.advance(301)
    # The stale URL is refused, but download() looks the URL up again right before fetching.
    assert wa.media.download(media_id) == PNG


def test_each_media_url_expires_on_its_own(fake: FakeGraphAPI) -> None:
    # In the fake as at Meta: looking the media up again issues a new URL; the old one still
    # expires five minutes after it was issued.
    media_id = fake.add_media(PNG, "image/png")
    wa = fake.whatsapp()
    first = wa.media.get(media_id).url
    assert isinstance(fake.clock, FrozenClock)
    fake.clock.advance(200)
    second = wa.media.get(media_id).url
    fake.clock.advance(200)  # 400 s after the first lookup, 200 s after the second
    with fake.client() as http:
        auth = {"Authorization": f"Bearer {fake.access_token}"}
        assert http.get(first, headers=auth).status_code == 404
        assert http.get(second, headers=auth).status_code == 200


def test_a_download_that_fails_before_its_first_byte_is_tried_again(fake: FakeGraphAPI) -> None:
    # A 503 or a dropped connection on the download URL is retried like any idempotent GET.
    media_id = fake.add_media(PNG, "image/png")
    fake.fail_next(status=503, path="attachments", body=b"")
    assert fake.whatsapp().media.download(media_id) == PNG
    fake.timeout_next(path="attachments")
    assert fake.whatsapp().media.download(media_id) == PNG
    downloads = [r for r in fake.requests if "attachments" in r.path]
    assert len(downloads) == 4


async def test_an_async_download_is_tried_again_too(fake: FakeGraphAPI) -> None:
    media_id = fake.add_media(PNG, "image/png")
    fake.fail_next(status=502, path="attachments", body=b"")
    assert await fake.async_whatsapp().media.download(media_id) == PNG


def test_a_download_that_keeps_failing_gives_up_after_the_retries(fake: FakeGraphAPI) -> None:
    media_id = fake.add_media(PNG, "image/png")
    fake.fail_next(status=503, path="attachments", body=b"", times=10)
    with pytest.raises(ServerError):
        fake.whatsapp(max_retries=2).media.download(media_id)
    assert len([r for r in fake.requests if "attachments" in r.path]) == 3


def test_download_that_fails_twice_raises(fake: FakeGraphAPI) -> None:
    media_id = fake.add_media(PNG, "image/png")
    fake.fail_next(status=404, path="attachments", times=2, body=b"")
    with pytest.raises(APIStatusError) as info:
        fake.whatsapp().media.download(media_id)
    assert info.value.status_code == 404


def _tampering_client() -> WhatsApp:
    """A client whose media downloads do not match the SHA-256 Meta gave for them."""

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "lookaside.fbsbx.com":
            return httpx.Response(200, content=b"tampered")
        return httpx.Response(
            200,
            json={
                "url": "https://lookaside.fbsbx.com/x?mid=1",
                "id": "1",
                "sha256": hashlib.sha256(PNG).hexdigest(),
            },
        )

    return WhatsApp(
        access_token="t",
        phone_number_id="1",
        http_client=httpx.Client(transport=httpx.MockTransport(handler)),
        throughput=None,
    )


def test_download_with_wrong_checksum_is_refused() -> None:
    with pytest.raises(APIResponseValidationError, match="SHA-256 does not match"):
        _tampering_client().media.download("1")


def test_a_download_that_fails_its_check_leaves_no_file(tmp_path: Path) -> None:
    wa = _tampering_client()
    fresh, kept = tmp_path / "new.png", tmp_path / "old.png"
    kept.write_bytes(b"the previous file")
    for destination in (fresh, kept):
        with pytest.raises(APIResponseValidationError, match="SHA-256 does not match"):
            wa.media.download_to("1", destination)
    assert not fresh.exists()  # nothing half-written or corrupt
    assert kept.read_bytes() == b"the previous file"  # an older file stays as it was
    assert list(tmp_path.iterdir()) == [kept]  # and no leftovers beside them


def test_download_to_a_path_writes_as_open_would(fake: FakeGraphAPI, tmp_path: Path) -> None:
    # The file moved into place gets the mode open() would give (not a temp file's 0600), an
    # existing file keeps its mode, and a symlink is written through, not replaced.
    media_id = fake.add_media(PNG, "image/png")
    media = fake.whatsapp().media
    umask = os.umask(0o022)
    try:
        fresh = tmp_path / "fresh.png"
        media.download_to(media_id, fresh)
        assert fresh.stat().st_mode & 0o777 == 0o644
        kept = tmp_path / "kept.png"
        kept.write_bytes(b"old")
        kept.chmod(0o664)
        media.download_to(media_id, kept)
        assert (kept.read_bytes(), kept.stat().st_mode & 0o777) == (PNG, 0o664)
        link = tmp_path / "link.png"
        link.symlink_to(kept)
        media.download_to(media_id, link)
        assert link.is_symlink() and kept.read_bytes() == PNG
    finally:
        os.umask(umask)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fresh.png", "kept.png", "link.png"]


def test_a_3gp_file_uploads_as_video(fake: FakeGraphAPI, tmp_path: Path) -> None:
    clip = tmp_path / "clip.3gp"
    clip.write_bytes(b"\0" * 1000)  # Python guesses audio/3gpp, which WhatsApp does not take
    upload = fake.whatsapp().media.upload(clip)
    assert fake.whatsapp().media.get(upload.id).mime_type == "video/3gpp"


def test_delete(fake: FakeGraphAPI) -> None:
    media_id = fake.add_media(PNG, "image/png")
    wa = fake.whatsapp()
    assert wa.media.delete(media_id) is True
    with pytest.raises(APIStatusError) as info:
        wa.media.get(media_id)
    assert info.value.code == 100


async def test_async_media_round_trip(fake: FakeGraphAPI, tmp_path: Path) -> None:
    wa = fake.async_whatsapp()
    upload = await wa.media.upload(PNG, mime_type="image/png")
    fake.fail_next(status=404, path="attachments", body=b"")
    assert await wa.media.download(upload.id) == PNG
    target = tmp_path / "a.png"
    assert await wa.media.download_to(upload.id, target) == len(PNG)
    assert target.read_bytes() == PNG
    assert (await wa.media.get(upload.id)).sha256 == hashlib.sha256(PNG).hexdigest()
    assert await wa.media.delete(upload.id) is True
