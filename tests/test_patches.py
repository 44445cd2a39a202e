"""The register of library patches (dotsocr_site/patches/): each refuses a library version
it was not written for, or one without what it replaces, and start-up runs the checks.
Nothing is upgraded: the installed version is replaced by a fake one where it is read."""

import importlib

import pytest
from django.apps import apps

from dotsocr_site import patches
from dotsocr_site.patches import UnsupportedVersion

DISTRIBUTION = {
    "asgiref": "asgiref",
    "channels": "channels",
    "channels_postgres": "channels_postgres",
    "daphne": "daphne",
    "django_q": "django-q2",
    "twisted": "Twisted",
}
FAKE_VERSION = "999.0.0"


def fake_installed_versions(monkeypatch):
    monkeypatch.setattr(patches, "installed_version", lambda distribution: FAKE_VERSION)
    monkeypatch.setattr(importlib.import_module("dotsocr_site.patches.django_q"), "version", lambda name: FAKE_VERSION)


def written_for(name: str) -> str:
    module = importlib.import_module(f"dotsocr_site.patches.{name}")
    return getattr(module, "WRITTEN_FOR", None) or module.DJANGO_Q2_VERSION


def test_the_register_lists_every_patch_module():
    assert set(patches.MODULES) == set(DISTRIBUTION)


def test_every_patch_accepts_the_installed_libraries():
    patches.check_all()


@pytest.mark.parametrize("name", sorted(DISTRIBUTION))
def test_a_patch_refuses_another_version_of_its_library(monkeypatch, name):
    fake_installed_versions(monkeypatch)
    module = importlib.import_module(f"dotsocr_site.patches.{name}")
    expected = f"patches/{name}.py was written for {DISTRIBUTION[name]} {written_for(name)}, not {FAKE_VERSION}"
    with pytest.raises(UnsupportedVersion, match=expected):
        module.check()


def test_start_up_refuses_a_mismatched_version(monkeypatch):
    fake_installed_versions(monkeypatch)
    with pytest.raises(UnsupportedVersion, match=f"not {FAKE_VERSION}"):
        apps.get_app_config("conversions").ready()


@pytest.mark.parametrize(
    ("name", "owner", "attribute"),
    [
        ("asgiref", "asgiref.sync.SyncToAsync", "threadlocal"),
        ("channels", "channels.consumer.AsyncConsumer", "dispatch"),
        ("channels_postgres", "channels_postgres.core.PostgresChannelLayer", "_get_message_from_channel"),
        ("daphne", "daphne.server.Server", "timeout_checker"),
        ("django_q", "django_q.cluster.Sentinel", "spawn_pusher"),
    ],
)
def test_a_patch_refuses_a_library_without_what_it_replaces(monkeypatch, name, owner, attribute):
    module_name, class_name = owner.rsplit(".", 1)
    owner_class = getattr(importlib.import_module(module_name), class_name)
    monkeypatch.delattr(owner_class, attribute)
    with pytest.raises(UnsupportedVersion, match=f"patches/{name}.py replaces {attribute} of {class_name}"):
        importlib.import_module(f"dotsocr_site.patches.{name}").check()


def test_the_twisted_patch_refuses_a_channel_that_no_longer_keeps_the_path(monkeypatch):
    from twisted.web.http import HTTPChannel

    def line_received(self, line):  # a Twisted that stores the request line elsewhere
        self.request_line = line

    monkeypatch.setattr(HTTPChannel, "lineReceived", line_received)
    with pytest.raises(UnsupportedVersion, match="reads HTTPChannel._path"):
        importlib.import_module("dotsocr_site.patches.twisted").check()
