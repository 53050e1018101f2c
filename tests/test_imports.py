"""Every module imports as ``import a.b.c as m``: no public name shadows a subpackage."""

import importlib
import pkgutil

import pytest

import pusher_farm

MODULES = sorted(
    m.name for m in pkgutil.walk_packages(pusher_farm.__path__, "pusher_farm.") if not m.name.endswith("__main__")
)


def test_the_package_has_modules():
    assert "pusher_farm.cluster.protocol.messages" in MODULES and "pusher_farm.core.executor" in MODULES


@pytest.mark.parametrize("name", MODULES)
def test_module_imports_by_its_dotted_path(name):
    scope: dict = {}
    exec(f"import {name} as m", scope)  # fails when an attribute on the way hides a subpackage
    assert scope["m"] is importlib.import_module(name)
