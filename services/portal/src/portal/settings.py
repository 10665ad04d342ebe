"""The portal's settings: the kit's; the read model needs no rules of its own."""

from buurtkracht_kit.settings import KitSettings


class PortalSettings(KitSettings):
    service_name: str = "portal"
