"""The node's ASGI app: federation endpoints (node to node) and the client REST API.

HTTP status codes live here and nowhere else (STYLE.md): errors from the
service layer are mapped to RFC 9457 problem+json answers naming the error.
"""
