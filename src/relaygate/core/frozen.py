"""A cheaper ``__init__`` for the frozen slots dataclasses a request makes many of.

A frozen dataclass's generated ``__init__`` sets each field with ``object.__setattr__(self,
name, value)`` (its own ``__setattr__`` refuses): on CPython 3.11 about a thousand instructions
a field (a slot-wrapper call with its argument tuple, a check of the type's bases, the generic
attribute lookup), against a few dozen for ``self.name = value`` on an object that allows it.
A relayed request builds ~70 such fields (a ``ChatRequest`` alone has 19).

``quick_init`` gives such a class an ``__init__`` that turns the new instance into an
unfrozen twin of the same layout (same ``__slots__``, same base), stores each field plainly and
turns it back: two ``__class__`` assignments, whatever the number of fields. Same parameters,
defaults and default factories as the generated one; the class, its ``__setattr__`` (still
frozen), equality, hash and ``repr`` are untouched. Worth it from about three fields.

Only for what it can reproduce exactly: a frozen, slotted dataclass directly on ``object``
whose fields are all plain ``__init__`` parameters (no ``kw_only``, ``InitVar`` or
``__post_init__``). An instance of a subclass that runs this ``__init__`` gets the generated
one's behaviour (it is called instead).
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

T = TypeVar("T")

_MISSING = dataclasses.MISSING


class _Factory:
    """The default of a parameter whose field has a ``default_factory`` (shown as dataclasses
    shows it)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<factory>"


_HAS_FACTORY = _Factory()


def quick_init(cls: type[T]) -> type[T]:
    """``cls`` with the cheaper ``__init__`` (see the module); raises ``TypeError`` for a class
    it cannot serve exactly."""
    target: Any = cls  # set up through the generic type machinery below
    params = getattr(target, "__dataclass_params__", None)
    if params is None or not params.frozen or "__slots__" not in cls.__dict__:
        raise TypeError(f"{cls.__name__}: not a frozen slots dataclass")
    if cls.__bases__ != (object,) or hasattr(cls, "__post_init__"):
        raise TypeError(f"{cls.__name__}: has a base class or a __post_init__")
    fields = dataclasses.fields(target)
    if len(fields) != len(target.__dataclass_fields__):
        raise TypeError(f"{cls.__name__}: has InitVar or ClassVar pseudo-fields")
    if any(not f.init or f.kw_only for f in fields):
        raise TypeError(f"{cls.__name__}: has a field outside __init__ or keyword-only")
    twin = type(f"_{cls.__name__}Init", (), {"__slots__": target.__slots__})
    namespace: dict[str, Any] = {
        "_cls": cls,
        "_twin": twin,
        "_set": object.__setattr__,
        "_generated": target.__init__,
        "_HAS_FACTORY": _HAS_FACTORY,
    }
    params_src: list[str] = []
    values: list[str] = []
    for f in fields:
        name = f.name
        value = name
        if f.default is not _MISSING:
            namespace[f"_default_{name}"] = f.default
            params_src.append(f"{name}=_default_{name}")
        elif f.default_factory is not _MISSING:
            namespace[f"_factory_{name}"] = f.default_factory
            params_src.append(f"{name}=_HAS_FACTORY")
            value = f"_factory_{name}() if {name} is _HAS_FACTORY else {name}"
        else:
            params_src.append(name)
        values.append(value)
    source = "\n".join(
        [
            f"def __init__(self, {', '.join(params_src)}):",
            "    if self.__class__ is not _cls:",
            f"        return _generated(self, {', '.join(f'({v})' for v in values)})",
            "    _set(self, '__class__', _twin)",
            *(f"    self.{f.name} = {v}" for f, v in zip(fields, values, strict=True)),
            "    self.__class__ = _cls",
        ]
    )
    exec(source, namespace)  # noqa: S102 - built from the dataclass's own field names
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__module__ = cls.__module__
    init.__annotations__ = dict(target.__init__.__annotations__)
    init.__doc__ = target.__init__.__doc__
    # The layouts must allow the swap: checked once here rather than at the first request.
    probe = object.__new__(cls)
    object.__setattr__(probe, "__class__", twin)
    probe.__class__ = cls
    target.__init__ = init
    return cls
