"""Every patch of a library's internals, one module per library; each names the version
it was written against and refuses to run on another (checked when it is installed)."""


class UnsupportedVersion(RuntimeError):
    """The installed library is not the version a patch was written for."""
