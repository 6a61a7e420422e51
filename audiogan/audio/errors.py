"""The audio error, apart from the code that raises it: the server maps it to a status without importing torch."""


class AudioError(ValueError):
    """Audio that cannot be used: unreadable, empty, or not finite."""
