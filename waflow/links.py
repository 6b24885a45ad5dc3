"""Links that open a chat: wa.me (with prefilled text) and m.me (with a ref).

A wa.me link's prefilled text is what the customer sends with one tap — the message that opens the
24-hour service window, so no template is needed — and it can carry a handoff code that links the
WhatsApp conversation to the customer's Messenger one.
"""

from __future__ import annotations

from urllib.parse import quote

import phonenumbers

from waflow.errors import MessageValidationError

__all__ = ["PREFILLED_TEXT_MAX", "m_me_link", "wa_me_link"]

#: Keep prefilled texts short: long ones are cut by some apps and look like spam.
PREFILLED_TEXT_MAX = 256
_REF_MAX = 2048


def _international_digits(number: str) -> str:
    """The digits wa.me takes (country code first, no national prefix), or raise."""
    text = number.strip()
    if not text.startswith("+"):
        text = "+" + "".join(ch for ch in text if ch.isdigit())
    try:
        parsed = phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException:
        parsed = None
    if parsed is None or not phonenumbers.is_possible_number(parsed):
        raise MessageValidationError(
            f"wa.me needs the number in international form, country code first, such as "
            f"+49 30 1234567 (no 00 and no leading 0 of a national number); got {number!r}"
        )
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)[1:]


def wa_me_link(number: str, text: str | None = None) -> str:
    """``https://wa.me/<digits>?text=<url-encoded text>`` for a business number.

    ``number`` is the business number customers see, in international form (``+49 30 1234567``,
    spaces, dashes and a national ``(0)`` allowed; ``00…`` or ``0…`` raise
    :class:`~waflow.errors.MessageValidationError`); ``text`` is URL-encoded (UTF-8) and limited
    to :data:`PREFILLED_TEXT_MAX` characters.
    """
    digits = _international_digits(number)
    if text is None:
        return f"https://wa.me/{digits}"
    if len(text) > PREFILLED_TEXT_MAX:
        raise MessageValidationError(
            f"prefilled text must be at most {PREFILLED_TEXT_MAX} characters, got {len(text)}",
            limit=f"wa.me prefilled text <= {PREFILLED_TEXT_MAX} characters",
        )
    return f"https://wa.me/{digits}?text={quote(text, safe='')}"


def m_me_link(page: str, ref: str | None = None) -> str:
    """``https://m.me/<page>?ref=<ref>``: opens Messenger; the ref arrives as a referral webhook."""
    if not page or "/" in page:
        raise MessageValidationError("m.me needs a Page id or username")
    if ref is None:
        return f"https://m.me/{page}"
    if len(ref) > _REF_MAX:
        raise MessageValidationError(f"m.me ref must be at most {_REF_MAX} characters")
    return f"https://m.me/{page}?ref={quote(ref, safe='')}"
