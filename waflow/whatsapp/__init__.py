"""WhatsApp Cloud API: outbound message models and builders, clients, media."""

from waflow.whatsapp.client import AsyncWhatsApp, WhatsApp

__all__ = ["AsyncWhatsApp", "WhatsApp"]
