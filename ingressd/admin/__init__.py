"""The admin endpoint: health and readiness, ``/metrics``, ``/routes`` and the admin page."""
