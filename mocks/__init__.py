"""Mock CRM and Billing upstreams: real HTTP servers with deterministic fault injection.

`create_crm_app` / `create_billing_app` build the FastAPI apps (mount them in-process in tests),
`mocks.server.serve` runs both over HTTP, and `mocks.testing.start_mock_servers` starts them as a
subprocess for tests elsewhere. The engine never imports this package (plugins only).
"""

from mocks.billing import BillingState, create_billing_app
from mocks.crm import CrmState, create_crm_app
from mocks.faults import Behaviour, FaultSettings

__all__ = [
    "Behaviour",
    "BillingState",
    "CrmState",
    "FaultSettings",
    "create_billing_app",
    "create_crm_app",
]
