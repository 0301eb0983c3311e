"""Settings, read once from the environment (prefix ``SIGNOFF_``) by bootstrap."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

EXAMPLES = Path(__file__).parent / "examples"


class Settings(BaseSettings):
    """The server's settings."""

    model_config = SettingsConfigDict(env_prefix="SIGNOFF_", extra="ignore")

    data_dir: Path = Field(
        Path(".signoff"), description="Where the embedded SQLite database lives."
    )
    database_url: str = Field(
        "",
        description="SQLAlchemy URL; empty means SQLite at DATA_DIR/signoff.db. "
        "For PostgreSQL: postgresql+psycopg://user@host:5432/db",
    )
    policies_dir: Path = Field(EXAMPLES / "policies", description="Folder of policy YAML files.")
    users_file: Path = Field(
        EXAMPLES / "users.yaml", description="YAML file of users and groups (embedded mode)."
    )
    host: str = Field("127.0.0.1", description="Address the HTTP server binds.")
    port: int = Field(8000, description="Port the HTTP server binds.")
    max_body_bytes: int = Field(
        1_048_576, description="Largest request body accepted, in bytes (larger: 413)."
    )
    sse_keepalive_seconds: float = Field(
        15.0, description="Seconds between keep-alive comments on idle event streams."
    )
    db_pool_size: int = Field(10, description="Database connections kept per process.")

    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'signoff.db').resolve()}"


class ClientSettings(BaseSettings):
    """What the CLI needs to reach a server."""

    model_config = SettingsConfigDict(env_prefix="SIGNOFF_", extra="ignore")

    url: str = Field("http://127.0.0.1:8000", description="Base URL of the Signoff server.")
    token: str = Field("", description="API token (create one with `signoff token create`).")
