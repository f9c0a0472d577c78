"""The request path behind the client side: the ``Exchange`` (route → feature chain → upstream
→ response → error page), the chain runner, the forwarding-header policy, the upstream
protocols and their connection pool, and WebSocket tunnels."""
