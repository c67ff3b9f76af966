"""The workflow's CURVE keys: one server pair for the collector, one client pair for its jobs.

Layout under `.adaptive-snakemake/keys/` (mode 0700, secret files 0600), in the
certificate format `zmq.auth.load_certificate` reads:

    server.key           collector public key (jobs need it to connect)
    server.key_secret    collector secret key
    client.key_secret    the jobs' key pair: a job holding it may deliver records
    clients/client.key   public keys the collector accepts (ZAP allow-list directory)
"""

import os
from dataclasses import dataclass
from pathlib import Path

import zmq
import zmq.auth

from adaptive_snakemake.fileio import atomic_write_bytes
from adaptive_snakemake.layout import ensure_private_dir, keys_dir

_BANNER = (
    "#   ZeroMQ CURVE {kind} certificate of an adaptive-snakemake workflow; keep it private.\n"
)


@dataclass(frozen=True)
class KeyFiles:
    server_public: Path
    server_secret: Path
    client_secret: Path
    allowed_clients: Path

    @classmethod
    def in_dir(cls, directory: Path) -> "KeyFiles":
        return cls(
            server_public=directory / "server.key",
            server_secret=directory / "server.key_secret",
            client_secret=directory / "client.key_secret",
            allowed_clients=directory / "clients",
        )


def ensure_keys(workdir: str | os.PathLike) -> KeyFiles:
    """The workflow's key files, created on first use; existing keys are never replaced."""
    directory = ensure_private_dir(keys_dir(workdir))
    files = KeyFiles.in_dir(directory.resolve())
    ensure_private_dir(files.allowed_clients)
    if not files.server_secret.exists():
        public, secret = zmq.curve_keypair()
        _write_certificate(files.server_secret, "server", public, secret)
    if not files.server_public.exists():
        public, _ = load_key_pair(files.server_secret)
        _write_certificate(files.server_public, "server", public, None)
    if not files.client_secret.exists():
        public, secret = zmq.curve_keypair()
        _write_certificate(files.client_secret, "client", public, secret)
    allowed = files.allowed_clients / "client.key"
    if not allowed.exists():
        public, _ = load_key_pair(files.client_secret)
        _write_certificate(allowed, "client", public, None)
    return files


def load_key_pair(path: str | os.PathLike) -> tuple[bytes, bytes | None]:
    """(public, secret) from a certificate file; secret is None for a public-only file."""
    return zmq.auth.load_certificate(path)


def _write_certificate(path: Path, kind: str, public: bytes, secret: bytes | None) -> None:
    """Write atomically with mode 0600 from the start, so a secret is never world-readable."""
    text = _BANNER.format(kind=kind) + "metadata\ncurve\n"
    text += f'    public-key = "{public.decode()}"\n'
    if secret is not None:
        text += f'    secret-key = "{secret.decode()}"\n'
    atomic_write_bytes(path, text.encode(), mode=0o600)
