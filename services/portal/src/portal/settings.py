"""The portal's settings: the kit's, and those of its web pages (sign-in, cookies, the services it calls)."""

from pathlib import Path

from pydantic import Field

from buurtkracht_kit.settings import KitSettings


class PortalSettings(KitSettings):
    service_name: str = "portal"
    http_port: int = 8004

    public_url: str = Field("http://127.0.0.1:8004", description="The portal's own external base URL")
    oidc_issuer: str = Field(
        "",
        description="Issuer URL of the identity provider (discovery at its /.well-known/openid-configuration); "
        "empty: sign-in is off and only the public pages work",
    )
    oidc_client_id: str = "portal"
    oidc_client_secret: str = ""
    session_secret: str = Field("", description="Signs the session cookie (the cookie's random id is unguessable too)")
    session_hours: float = Field(8.0, gt=0, description="How long a sign-in lasts")
    cookie_secure: bool = Field(False, description="Cookies only over HTTPS (true on Kubernetes)")
    initiatives_url: str = "http://127.0.0.1:8001"
    vouchers_url: str = "http://127.0.0.1:8002"
    notifications_url: str = "http://127.0.0.1:8003"
    service_timeout_seconds: float = Field(10.0, gt=0, description="How long a page waits for a service")
    municipality_name: str = "Gemeente Buurtkracht"
    area_names_seconds: float = Field(
        60.0, ge=0, description="How long a process shows the area names it read before reading them again"
    )
    assets_dir: Path = Field(
        Path(__file__).resolve().parents[2] / "node_modules",
        description="The npm packages the pages use (`npm ci` in services/portal; an image copies them)",
    )
