"""In-memory stand-ins for what the core hands plugins (now public in ``ingressd.testing``).

This module makes the source tree's ``plugins/`` importable as ``ingressd_plugins`` and
re-exports ``ingressd.testing``. ``FakeExchange`` offers the request-time interface the proxy gives route features (with
the core's real ``Headers``);
``annotation_values`` parses raw annotation strings through a plugin's own ``Annotation``
declarations the way the core does when it builds routes; ``run_request`` and
``run_response`` call a route's features in phase order, as the proxy does.
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

_ROOT = Path(__file__).resolve().parent.parent
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))


def _import_builtin_plugins() -> None:
    """Make every module of the source tree's ``plugins/`` importable as ``ingressd_plugins``.

    Not installed: load the package from the source tree. Installed in editable "strict"
    mode (a link tree made at install time): also search the source directory, so plugin
    modules added since the install are found too.
    """
    source = _ROOT / "plugins"
    try:
        import ingressd_plugins
    except ImportError:
        spec = importlib.util.spec_from_file_location(
            "ingressd_plugins", source / "__init__.py", submodule_search_locations=[str(source)]
        )
        module = importlib.util.module_from_spec(spec)
        sys.modules["ingressd_plugins"] = module
        spec.loader.exec_module(module)
        return
    if str(source) not in ingressd_plugins.__path__:
        ingressd_plugins.__path__.append(str(source))


_import_builtin_plugins()

# The helpers live in the public ``ingressd.testing`` module; re-exported for the tests here.
from ingressd.testing import (  # noqa: E402,F401
    FakeExchange,
    PluginHarness,
    annotation_values,
    exchange,
    features_for,
    header,
    make_context,
    make_route,
    run_request,
    run_response,
    secret,
)
