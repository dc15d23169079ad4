"""The engine daemon: a ZeroMQ server that owns the device, queues jobs and caches models."""
