"""The service's exceptions: one root, one subclass per kind of failure."""


class LtvCacError(Exception):
    """Root of every error this service raises on purpose."""


class ConfigurationError(LtvCacError):
    """A setting or the broker's topic layout does not allow the worker to run."""
