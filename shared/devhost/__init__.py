"""The local host behind ``dip-edge serve``: mTLS front door, function dispatch, workers.

``functions`` reads ``function_app.py``'s functions and routes, ``server`` is the HTTPS
front door (:class:`~shared.devhost.server.DevHost`), ``devcerts`` makes the dev
certificates, ``workers`` lists the background workers started with the server.
"""
