"""The service's exceptions: one root, one subclass per kind of failure."""


class LtvCacError(Exception):
    """Root of every error this service raises on purpose."""


class ConfigurationError(LtvCacError):
    """A setting or the broker's topic layout does not allow the worker to run."""


class DeliveryFailed(LtvCacError):
    """The broker did not take a message the worker produced (a changelog write, a delta,
    an internal message or a dead letter): the events that caused it must not be
    acknowledged, so the worker stops and its restart reads them again."""
