"""References to media in outbound WhatsApp payloads: an uploaded media id or a public link."""

from __future__ import annotations

from pydantic import model_validator

from waflow._models import OutboundModel, check_length, violation

__all__ = ["CAPTION_MAX", "MediaRef", "media_ref"]

#: Meta's limit on media captions.
CAPTION_MAX = 1024


class MediaRef(OutboundModel):
    """Media by ``id`` (from an upload) or by ``link`` (an http(s) URL Meta can fetch), not both.

    ``caption`` applies to images, videos and documents; ``filename`` to documents only; the message
    that holds the reference checks which are allowed.
    """

    id: str | None = None
    link: str | None = None
    caption: str | None = None
    filename: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> MediaRef:
        if (self.id is None) == (self.link is None):
            raise violation("media needs exactly one of `id` or `link`", field="media")
        if self.link is not None and not self.link.startswith(("http://", "https://")):
            raise violation("media `link` must be an http(s) URL", field="media.link")
        check_length(self.caption, CAPTION_MAX, "media caption")
        return self


def media_ref(source: str, *, caption: str | None = None, filename: str | None = None) -> MediaRef:
    """A :class:`MediaRef` from an uploaded media id or an http(s) link, whichever ``source`` is."""
    if source.startswith(("http://", "https://")):
        return MediaRef(link=source, caption=caption, filename=filename)
    return MediaRef(id=source, caption=caption, filename=filename)
