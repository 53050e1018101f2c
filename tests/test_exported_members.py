import inspect
import types

import pusher_farm


def test_public_surface_is_exactly_all():
    exported = {
        name
        for name, value in vars(pusher_farm).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert exported == set(pusher_farm.__all__)
    assert pusher_farm.__all__ == sorted(pusher_farm.__all__)


def test_every_public_class_and_function_is_documented():
    for name in pusher_farm.__all__:
        obj = getattr(pusher_farm, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert obj.__doc__, name
