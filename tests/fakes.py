"""In-memory stand-ins for what the core hands plugins (now public in ``ingressd.testing``).

This module re-exports ``ingressd.testing``. ``FakeExchange`` offers the request-time interface the proxy gives route features (with
the core's real ``Headers``);
``annotation_values`` parses raw annotation strings through a plugin's own ``Annotation``
declarations the way the core does when it builds routes; ``run_request`` and
``run_response`` call a route's features in phase order, as the proxy does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

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
