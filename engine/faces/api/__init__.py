"""The HTTP service API: one more face over the runtime contract (``engine.runtime.contract``).

Intake channels and agency systems in any language reach the same ``Runtime`` calls the ``lapor``
command and the SDK make; callers authenticate with API keys (``engine.sql.apikeys``), and the
actor of every call is derived from the key, never asserted by the caller.
"""
