"""Import oslo.messaging quietly and build its configuration.

Importing oslo.messaging 18 imports eventlet (through oslo.service and
futurist), which emits deprecation warnings; no monkey-patching happens,
and servers use the threading executor, the default without eventlet.
"""

from __future__ import annotations

import warnings
from typing import Any

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import oslo_messaging
    from oslo_config import cfg
    from oslo_messaging._metrics import client as metrics_client
    from oslo_messaging._tracing import client as tracing_client

om: Any = oslo_messaging


def make_conf(url: str) -> tuple[Any, Any]:
    """Return a private ConfigOpts and the parsed transport URL.

    The tracing and metrics option groups are registered on the global
    ``cfg.CONF`` only; calls and servers read them, so a private ConfigOpts
    needs them too.
    """
    conf = cfg.ConfigOpts()
    conf.register_opts(
        metrics_client.oslo_messaging_metrics, group="oslo_messaging_metrics"
    )
    conf.register_opts(
        tracing_client.oslo_messaging_tracing, group="oslo_messaging_tracing"
    )
    parsed = om.TransportURL.parse(conf, url)
    conf.set_override("control_exchange", "openstack")
    return conf, parsed
