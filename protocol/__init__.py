"""The wire protocol between editor plugins and the engine daemon (pyzmq + msgpack only)."""
