"""Lenas Radladen: the example shop bot of waflow, built only on waflow's public API.

A small bike shop sells from its Meta catalog on Messenger and WhatsApp: products on Messenger,
the hand-over to WhatsApp (by phone and opt-in, or by a wa.me link with a code), product messages,
orders from the catalog, click-to-WhatsApp ads with a reported Purchase, opt-out, and a human when
asked. Run it with ``python -m uvicorn --app-dir examples shop_bot.app:app`` or ``waflow demo``.
"""
