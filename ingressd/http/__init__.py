"""The client side on the wire: HTTP/1.1 and HTTP/2 server protocols, the HTTP/1.1 parser
(``parser``: llhttp through httptools, ``pyparser``: the pure-Python fallback), header lists,
path normalisation and the per-request deadline."""
