"""The wire protocol between editor plugins and the engine daemon (pyzmq + msgpack only)."""

from .version import PROTOCOL_VERSION

__all__ = ["PROTOCOL_VERSION"]
