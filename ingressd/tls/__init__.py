"""TLS termination: certificate selection by SNI (``certificates``) and TLS facts for metrics
and the access log (``facts``)."""
