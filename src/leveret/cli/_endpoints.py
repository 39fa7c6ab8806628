"""Loading the endpoint objects that ``leveret serve`` serves."""

from __future__ import annotations

import importlib
import inspect

import click

__all__ = ["load_endpoint"]

# Names the argument in the usage errors raised here.
_PARAM_HINT = "'MODULE:ATTR'"


def _import_module(name: str) -> object:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        # Only a missing MODULE (or one of its parents) is the user's typo.
        # A missing import inside MODULE is a bug there, shown with its traceback.
        if exc.name is None or not (
            name == exc.name or name.startswith(exc.name + ".")
        ):
            raise
        raise click.BadParameter(
            f"module {name!r} not found: check the name, and --app-dir if the "
            "module is not installed",
            param_hint=_PARAM_HINT,
        ) from None


def load_endpoint(spec: str) -> object:
    """Return the endpoint object that *spec* (``MODULE:ATTR``) names.

    A class or function is called without arguments to build the endpoint;
    any other object is the endpoint itself. ATTR may be dotted
    (``MODULE:Outer.Inner``). Raises :class:`click.BadParameter` for a
    malformed spec, a missing module or attribute, or a factory that needs
    arguments. Exceptions raised by the module's code or the factory pass
    through unchanged, with their traceback, because they are bugs to fix
    there.
    """
    module_name, separator, attribute_path = spec.partition(":")
    if not separator or not module_name or not attribute_path:
        raise click.BadParameter(
            f"invalid endpoint {spec!r}: expected MODULE:ATTR, e.g. myapp.rpc:Compute",
            param_hint=_PARAM_HINT,
        )
    found = _import_module(module_name)
    for attribute in attribute_path.split("."):
        try:
            found = getattr(found, attribute)
        except AttributeError:
            raise click.BadParameter(
                f"attribute {attribute_path!r} not found in module {module_name!r}",
                param_hint=_PARAM_HINT,
            ) from None
    if not (inspect.isclass(found) or inspect.isroutine(found)):
        return found
    try:
        inspect.signature(found).bind()
    except TypeError:
        raise click.BadParameter(
            f"{spec!r} needs arguments, but serve calls it without any: point "
            "to a class or function that takes none, or to an endpoint object",
            param_hint=_PARAM_HINT,
        ) from None
    except ValueError:
        pass  # no signature available (some built-ins): just try the call
    return found()
