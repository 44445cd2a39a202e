"""The register of every patch or copy of a library's internals: one module per library.

Each module says what it replaces, why, the exact version of the library it was written
against (``WRITTEN_FOR``) and how to tell when it can go; its ``check()`` refuses any
other installed version, and any version whose attributes it replaces are missing, with
`UnsupportedVersion` naming the module to revisit. ``check_all()`` runs every check at
start-up (conversions/apps.py: web process, workers, management commands, tests), so an
upgrade of one of these libraries fails loudly at once instead of silently later.

=====================  ===========================================================
module                 replaces
=====================  ===========================================================
asgiref.py             reads asgiref's ``SyncToAsync.threadlocal`` (is this thread an ASGI request's?)
channels.py            a copy of Channels' ``AsyncConsumer.__call__`` and ``dispatch``
channels_postgres.py   channels_postgres' group query; its private message read and LISTEN loop wrapped
daphne.py              daphne's ``WebRequest`` body handling and ``Server.timeout_checker``
django_q.py            django-q2's cluster stop (``Sentinel.stop`` and around), ``Queue.get``, ``Stat.save``
twisted.py             reads Twisted's private ``HTTPChannel._path``; one accept per wake-up (``Port.doRead``)
=====================  ===========================================================
"""

from collections.abc import Iterable
from importlib import import_module
from importlib.metadata import version as installed_version

# The modules of this package, each with a ``check()``.
MODULES = ("asgiref", "channels", "channels_postgres", "daphne", "django_q", "twisted")


class UnsupportedVersion(RuntimeError):
    """The installed library is not the version a patch was written for, or lacks what
    the patch replaces."""


def require_version(patch: str, distribution: str, written_for: str, installed: str | None = None) -> None:
    """Raise `UnsupportedVersion` unless ``distribution`` is installed at ``written_for``.

    ``patch`` is the patch module's name (``__name__``); ``installed`` defaults to the
    installed distribution's version (importlib.metadata)."""
    installed = installed_version(distribution) if installed is None else installed
    if installed != written_for:
        raise UnsupportedVersion(
            f"{source_of(patch)} was written for {distribution} {written_for}, not {installed}: "
            f"check what it replaces (its docstring) against {distribution} {installed}, "
            f"then update it and its WRITTEN_FOR, or remove it if {distribution} no longer needs it."
        )


def require_attributes(patch: str, owner: object, names: Iterable[str]) -> None:
    """Raise `UnsupportedVersion` unless ``owner`` (a class or module) has every one of ``names``."""
    missing = [name for name in names if not hasattr(owner, name)]
    if missing:
        owner_name = getattr(owner, "__qualname__", getattr(owner, "__name__", repr(owner)))
        raise UnsupportedVersion(
            f"{source_of(patch)} replaces {', '.join(missing)} of {owner_name}, which the installed "
            f"library does not have: update or remove the patch."
        )


def check_all() -> None:
    """Every patch module's ``check()``: the installed versions and attributes are the
    ones the patches were written for."""
    for name in MODULES:
        import_module(f"{__name__}.{name}").check()


def source_of(patch: str) -> str:
    """``dotsocr_site.patches.daphne`` -> ``dotsocr_site/patches/daphne.py``."""
    return patch.replace(".", "/") + ".py"
